package ingest

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtc"
	"github.com/streamd/streamd/sfu"
)

// peerFeed is what WHIP sessions and cluster relay pulls share: a peer
// connection whose remote tracks feed one sfu publication.
type peerFeed struct {
	peer      *rtc.Peer
	wg        *sync.WaitGroup // the owner's: its Close waits for the readers
	mu        sync.Mutex
	pub       *sfu.Publication
	videoSSRC []uint32
	layerSSRC []uint32 // a simulcast publisher's layers
	// onLayer is told of each rid a simulcast publisher sends.
	onLayer func(rid string)
}

func (f *peerFeed) setPublication(p *sfu.Publication) {
	f.mu.Lock()
	f.pub = p
	f.mu.Unlock()
}

func (f *peerFeed) publication() *sfu.Publication {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pub
}

// forward sends a remote track's packets and sender reports to the
// publication. It returns false when there is no publication (yet).
func (f *peerFeed) forward(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) bool {
	f.mu.Lock()
	pub := f.pub
	if track.Kind() == webrtc.RTPCodecTypeVideo && track.RID() == "" {
		f.videoSSRC = append(f.videoSSRC, uint32(track.SSRC()))
	}
	f.mu.Unlock()
	if pub == nil {
		return false
	}
	if track.Kind() == webrtc.RTPCodecTypeVideo && track.RID() != "" {
		f.forwardLayer(pub, track, receiver)
		return true
	}
	tw := pub.Track(track.Kind(), track.Codec().RTPCodecCapability)
	if track.Kind() == webrtc.RTPCodecTypeVideo {
		f.RequestKeyframe()
	}
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		readSenderReports(receiver, uint32(track.SSRC()), tw)
	}()
	go func() {
		defer f.wg.Done()
		readPackets(track, tw)
	}()
	return true
}

// readPackets passes a remote track's packets to the sfu until it ends.
func readPackets(track *webrtc.TrackRemote, tw *sfu.TrackWriter) {
	buf := make([]byte, 1500)
	var pkt rtp.Packet // reused: the sfu does not keep it
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) == nil {
			tw.WriteRTP(&pkt, time.Now())
		}
	}
}

// RequestKeyframe sends a PLI for every remote video track.
func (f *peerFeed) RequestKeyframe() {
	f.mu.Lock()
	ssrcs := append([]uint32(nil), f.videoSSRC...)
	ssrcs = append(ssrcs, f.layerSSRC...)
	f.mu.Unlock()
	for _, ssrc := range ssrcs {
		_ = f.peer.PC.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	}
}

// readSenderReports passes the sender's RTCP sender reports to the sfu
// (the media clock aligns on them). It ends with the peer connection.
func readSenderReports(receiver *webrtc.RTPReceiver, ssrc uint32, tw *sfu.TrackWriter) {
	for {
		pkts, _, err := receiver.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == ssrc {
				tw.SenderReport(ntpTime(sr.NTPTime), sr.RTPTime)
			}
		}
	}
}

// ntpTime converts a 64-bit NTP timestamp to a time.
func ntpTime(ntp uint64) time.Time {
	const ntpEpochOffset = 2208988800 // 1900 → 1970
	sec := int64(ntp>>32) - ntpEpochOffset
	frac := float64(ntp&0xffffffff) / (1 << 32)
	return time.Unix(sec, int64(frac*1e9))
}
