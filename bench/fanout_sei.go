// The SEI NAL the fan-out publisher stamps on each frame (counter and send
// time) so that subscribers can measure per-frame delay.

package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
)

// seiUUID marks the bench's user_data_unregistered SEI (no zero bytes, so
// the NAL needs no emulation prevention).
var seiUUID = [16]byte{0x5e, 0x7a, 0x3d, 0xb3, 0x4c, 0x11, 0x4e, 0x8f, 0x9a, 0x27, 0x61, 0xc4, 0xd2, 0x95, 0xbe, 0x1f}

const seiPayloadLen = 16 + 32 // uuid + 16 hex digits counter + 16 hex digits send time

// seiNAL builds the SEI NAL (type 6, payload type 5) carrying the frame
// counter and the send time in unix ns, both as hex text (no zero bytes).
func seiNAL(counter uint64, sendNs int64) []byte {
	n := make([]byte, 0, 3+seiPayloadLen+1)
	n = append(n, 0x06, 0x05, seiPayloadLen)
	n = append(n, seiUUID[:]...)
	var v [16]byte
	binary.BigEndian.PutUint64(v[:8], counter)
	binary.BigEndian.PutUint64(v[8:], uint64(sendNs))
	n = hex.AppendEncode(n, v[:])
	return append(n, 0x80) // rbsp trailing bits
}

// parseSEI reads a bench SEI NAL (starting at the NAL header).
func parseSEI(nal []byte) (counter uint64, sendNs int64, ok bool) {
	if len(nal) < 3+seiPayloadLen || nal[0]&0x1f != 6 || nal[1] != 5 || nal[2] != seiPayloadLen || !bytes.Equal(nal[3:19], seiUUID[:]) {
		return 0, 0, false
	}
	var v [16]byte
	if _, err := hex.Decode(v[:], nal[19:19+32]); err != nil {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(v[:8]), int64(binary.BigEndian.Uint64(v[8:])), true
}

// withSEI inserts sei (a NAL without start code) before the first slice NAL
// of an Annex-B access unit.
func withSEI(au, sei []byte) []byte {
	for i := 0; i+3 < len(au); i++ {
		if au[i] == 0 && au[i+1] == 0 && au[i+2] == 1 {
			if t := au[i+3] & 0x1f; t >= 1 && t <= 5 {
				s := i
				if s > 0 && au[s-1] == 0 {
					s--
				}
				out := make([]byte, 0, len(au)+len(sei)+4)
				out = append(out, au[:s]...)
				out = append(out, 0, 0, 0, 1)
				out = append(out, sei...)
				return append(out, au[s:]...)
			}
		}
	}
	return au
}
