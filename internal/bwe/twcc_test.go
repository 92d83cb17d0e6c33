package bwe

import (
	"testing"

	"github.com/pion/rtcp"
)

// This file builds TWCC feedback the way a receiver does, for the tests.

// status is one packet's fate as the receiver reports it.
type status struct {
	received bool
	arrUs    int64 // receiver clock, microseconds (when received)
}

// buildFeedback encodes statuses for base, base+1, … into a TWCC packet:
// run-length chunks for runs of 7 or more, 1-bit vectors where every symbol
// is "lost" or "small delta", 2-bit vectors otherwise. The result went
// through rtcp's Marshal and Unmarshal, so it is a packet a browser could
// have sent.
func buildFeedback(t testing.TB, base uint16, count uint8, sts []status) *rtcp.TransportLayerCC {
	t.Helper()
	fb := &rtcp.TransportLayerCC{
		SenderSSRC:         1,
		MediaSSRC:          2,
		BaseSequenceNumber: base,
		PacketStatusCount:  uint16(len(sts)),
		FbPktCount:         count,
	}
	// Reference time: the first received packet's arrival, floored to
	// 64 ms; deltas chain from there in 250 µs steps.
	var ref int64 = -1
	var last int64
	syms := make([]uint16, len(sts))
	for i, s := range sts {
		if !s.received {
			continue
		}
		if ref < 0 {
			ref = s.arrUs / 64000
			last = ref * 64000
		}
		d := (s.arrUs - last) / rtcp.TypeTCCDeltaScaleFactor
		last += d * rtcp.TypeTCCDeltaScaleFactor
		syms[i] = rtcp.TypeTCCPacketReceivedSmallDelta
		if d < 0 || d > 255 {
			syms[i] = rtcp.TypeTCCPacketReceivedLargeDelta
		}
		fb.RecvDeltas = append(fb.RecvDeltas, &rtcp.RecvDelta{Type: syms[i], Delta: d * rtcp.TypeTCCDeltaScaleFactor})
	}
	fb.ReferenceTime = uint32(max(ref, 0)) & 0xFFFFFF
	for i := 0; i < len(syms); {
		run := 1
		for i+run < len(syms) && syms[i+run] == syms[i] {
			run++
		}
		if run >= 7 {
			fb.PacketChunks = append(fb.PacketChunks, &rtcp.RunLengthChunk{
				Type: rtcp.TypeTCCRunLengthChunk, PacketStatusSymbol: syms[i], RunLength: uint16(run),
			})
			i += run
			continue
		}
		n := min(14, len(syms)-i)
		oneBit := true
		for _, s := range syms[i : i+n] {
			oneBit = oneBit && s != rtcp.TypeTCCPacketReceivedLargeDelta
		}
		size := uint16(rtcp.TypeTCCSymbolSizeOneBit)
		if !oneBit {
			n = min(7, n)
			size = rtcp.TypeTCCSymbolSizeTwoBit
		}
		fb.PacketChunks = append(fb.PacketChunks, &rtcp.StatusVectorChunk{
			Type: rtcp.TypeTCCStatusVectorChunk, SymbolSize: size, SymbolList: syms[i : i+n],
		})
		i += n
	}
	return roundTrip(t, fb)
}

// roundTrip sets fb's header, marshals and unmarshals it.
func roundTrip(t testing.TB, fb *rtcp.TransportLayerCC) *rtcp.TransportLayerCC {
	t.Helper()
	n := 20 + 2*len(fb.PacketChunks)
	for _, d := range fb.RecvDeltas {
		n++
		if d.Type == rtcp.TypeTCCPacketReceivedLargeDelta {
			n++
		}
	}
	padded := (n + 3) / 4 * 4
	fb.Header = rtcp.Header{
		Count:   rtcp.FormatTCC,
		Type:    rtcp.TypeTransportSpecificFeedback,
		Padding: padded != n,
		Length:  uint16(padded/4 - 1),
	}
	raw, err := fb.Marshal()
	if err != nil {
		t.Fatalf("marshal feedback: %v", err)
	}
	pkts, err := rtcp.Unmarshal(raw)
	if err != nil {
		t.Fatalf("unmarshal feedback: %v", err)
	}
	out, ok := pkts[0].(*rtcp.TransportLayerCC)
	if len(pkts) != 1 || !ok {
		t.Fatalf("unmarshal feedback: got %T ×%d", pkts[0], len(pkts))
	}
	return out
}
