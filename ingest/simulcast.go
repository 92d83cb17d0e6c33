package ingest

import (
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/sfu"
)

// A simulcast publisher (a=simulcast, one RTP stream per rid: OBS's WHIP
// simulcast, a browser with sendEncodings) sends the same picture in up to
// three sizes. Each rid is one layer of the stream's video in the sfu,
// which ranks them by bitrate, gives every viewer the one it asks for or
// its bandwidth allows, and keeps one timeline across them (sfu/layer.go).
// Here each layer only needs its reader, its sender reports and a way to
// ask for its own keyframe: a PLI to that rid's SSRC alone, so a viewer
// switching to the small layer does not cost the publisher a keyframe on
// the large one.

// forwardLayer reads one simulcast layer into its own sfu layer writer.
func (f *peerFeed) forwardLayer(pub *sfu.Publication, track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	ssrc := uint32(track.SSRC())
	f.mu.Lock()
	f.layerSSRC = append(f.layerSSRC, ssrc)
	f.mu.Unlock()
	tw := pub.Layer(track.Codec().RTPCodecCapability, func() {
		_ = f.peer.PC.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	})
	if f.onLayer != nil {
		f.onLayer(track.RID())
	}
	_ = f.peer.PC.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		for {
			pkts, _, err := receiver.ReadSimulcastRTCP(track.RID())
			if err != nil {
				return
			}
			for _, pk := range pkts {
				if sr, ok := pk.(*rtcp.SenderReport); ok && sr.SSRC == ssrc {
					tw.SenderReport(ntpTime(sr.NTPTime), sr.RTPTime)
				}
			}
		}
	}()
	go func() {
		defer f.wg.Done()
		readPackets(track, tw)
	}()
}
