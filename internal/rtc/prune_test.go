package rtc

import (
	"slices"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

func TestPruneOffer(t *testing.T) {
	_, offer := clientOffer(t, webrtc.MimeTypeH264)
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		t.Fatal(err)
	}
	before := len(d.MediaDescriptions[0].MediaName.Formats)
	if !pruneOffer(&d) {
		t.Fatal("a pion offer (RTX for every codec) was not pruned")
	}
	m := d.MediaDescriptions[0]
	kept := map[string]bool{}
	for _, pt := range m.MediaName.Formats {
		kept[pt] = true
	}
	names := map[string]bool{}
	for _, a := range m.Attributes {
		switch a.Key {
		case "rtpmap", "fmtp", "rtcp-fb":
			pt, rest, _ := strings.Cut(a.Value, " ")
			if pt != "*" && !kept[pt] {
				t.Errorf("%s line of a pruned payload type: %s", a.Key, a.Value)
			}
			if a.Key == "rtpmap" {
				name, _, _ := strings.Cut(rest, "/")
				names[strings.ToLower(name)] = true
			}
		}
	}
	if names["rtx"] || !names["h264"] || !names["vp8"] || !names["vp9"] || !names["av1"] {
		t.Errorf("codecs left: %v", names)
	}
	t.Logf("video payload types %d → %d", before, len(m.MediaName.Formats))

	// The answer to the pruned offer is the answer to the whole one.
	w := newTestNet(t)
	answers := make([]string, 2)
	for i, o := range []string{offer, mustMarshal(t, &d)} {
		pc, err := w.PublisherAPI().NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: o}); err != nil {
			t.Fatal(err)
		}
		a, err := pc.CreateAnswer(nil)
		if err != nil {
			t.Fatal(err)
		}
		answers[i] = mediaLines(a.SDP)
	}
	if answers[0] != answers[1] {
		t.Fatalf("answers differ:\nwhole offer:\n%s\npruned:\n%s", answers[0], answers[1])
	}

	// Nothing streamd takes: the section stays whole (and is refused as before).
	_, other := clientOffer(t, "video/MP4V-ES")
	var o sdp.SessionDescription
	if err := o.UnmarshalString(other); err != nil {
		t.Fatal(err)
	}
	formats := slices.Clone(o.MediaDescriptions[0].MediaName.Formats)
	if pruneOffer(&o) || !slices.Equal(formats, o.MediaDescriptions[0].MediaName.Formats) {
		t.Fatal("a section without a codec streamd takes was pruned")
	}
}

func mustMarshal(t *testing.T, d *sdp.SessionDescription) string {
	t.Helper()
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mediaLines keeps an answer's codec lines (the rest carries fresh ICE/DTLS
// credentials per peer connection).
func mediaLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\r\n") {
		if strings.HasPrefix(l, "m=") || strings.HasPrefix(l, "a=rtpmap") || strings.HasPrefix(l, "a=fmtp") || strings.HasPrefix(l, "a=rtcp-fb") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// BenchmarkSetRemoteOffer: what pion's SetRemoteDescription costs for a pion
// client's default offer, whole and pruned.
func BenchmarkSetRemoteOffer(b *testing.B) {
	w, err := New(NetConfig{UDPAddr: "127.0.0.1:0", LoopbackOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	cli, err := webrtc.NewAPI().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := cli.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			b.Fatal(err)
		}
	}
	offer, err := cli.CreateOffer(nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, prune := range []bool{false, true} {
		name := "whole"
		if prune {
			name = "pruned"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				o := offer.SDP
				if prune {
					var d sdp.SessionDescription
					if err := d.UnmarshalString(o); err != nil {
						b.Fatal(err)
					}
					pruneOffer(&d)
					bs, _ := d.Marshal()
					o = string(bs)
				}
				pc, err := w.SubscriberAPI().NewPeerConnection(webrtc.Configuration{})
				if err != nil {
					b.Fatal(err)
				}
				if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: o}); err != nil {
					b.Fatal(err)
				}
				_ = pc.Close()
			}
		})
	}
}
