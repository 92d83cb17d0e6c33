package sfu

import (
	"iter"
	"strings"
)

// codecKind names the payload formats whose keyframes the sfu can recognise.
// Recognising keyframes is what lets a late joiner start from the cache and a
// viewer resume cleanly after a publisher switch, so every video codec we
// accept needs an entry here.
type codecKind uint8

const (
	codecOther codecKind = iota
	codecH264
	codecH265
	codecVP8
	codecVP9
	codecAV1
)

func kindOfMime(mime string) codecKind {
	switch strings.ToLower(mime) {
	case "video/h264":
		return codecH264
	case "video/h265":
		return codecH265
	case "video/vp8":
		return codecVP8
	case "video/vp9":
		return codecVP9
	case "video/av1":
		return codecAV1
	}
	return codecOther
}

// isKeyframeStart reports whether an RTP payload carries the beginning of a
// keyframe (or the parameter sets that precede one). Several packets of one
// keyframe may answer true (e.g. an SPS packet then the IDR's first FU-A);
// callers group them by RTP timestamp.
func isKeyframeStart(k codecKind, p []byte) bool {
	if len(p) == 0 {
		return false
	}
	switch k {
	case codecH264:
		return h264Keyframe(p)
	case codecH265:
		return h265Keyframe(p)
	case codecVP8:
		return vp8Keyframe(p)
	case codecVP9:
		// RFC 9628: B (start of frame) set, P (inter-picture predicted) clear.
		return p[0]&0x08 != 0 && p[0]&0x40 == 0
	case codecAV1:
		// AV1 aggregation header: N marks the first packet of a new coded
		// video sequence, which starts with a key frame; Z must be clear.
		return p[0]&0x08 != 0 && p[0]&0x80 == 0
	}
	return false
}

func h264Keyframe(p []byte) bool {
	switch t := p[0] & 0x1f; t {
	case 5, 7: // IDR slice, SPS
		return true
	case 24: // STAP-A
		for nal := range stapA(p) {
			if nt := nal[0] & 0x1f; nt == 5 || nt == 7 {
				return true
			}
		}
	case 28: // FU-A: start bit and the fragmented NAL's type
		if len(p) >= 2 && p[1]&0x80 != 0 {
			nt := p[1] & 0x1f
			return nt == 5 || nt == 7
		}
	}
	return false
}

// stapA yields the NAL units aggregated in an H.264 STAP-A payload; it
// stops at the first malformed size.
func stapA(p []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for i := 1; i+2 < len(p); {
			n := int(p[i])<<8 | int(p[i+1])
			i += 2
			if n == 0 || i+n > len(p) || !yield(p[i:i+n]) {
				return
			}
			i += n
		}
	}
}

func h265Keyframe(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	isKey := func(t byte) bool { return (t >= 16 && t <= 21) || (t >= 32 && t <= 34) }
	switch t := (p[0] >> 1) & 0x3f; t {
	case 48: // aggregation packet
		for i := 2; i+2 < len(p); {
			n := int(p[i])<<8 | int(p[i+1])
			i += 2
			if n < 2 || i+n > len(p) {
				return false
			}
			if isKey((p[i] >> 1) & 0x3f) {
				return true
			}
			i += n
		}
		return false
	case 49: // fragmentation unit
		return len(p) >= 3 && p[2]&0x80 != 0 && isKey(p[2]&0x3f)
	default:
		return isKey(t)
	}
}

func vp8Keyframe(p []byte) bool {
	f, ok := vp8FrameStart(p)
	// VP8 payload header: P bit (inverse keyframe flag) is bit 0.
	return ok && len(f) > 0 && f[0]&0x01 == 0
}

// vp8FrameStart skips the RFC 7741 payload descriptor of a packet that
// starts a frame (S set, partition 0) and returns the VP8 data after it.
func vp8FrameStart(p []byte) ([]byte, bool) {
	if len(p) == 0 {
		return nil, false
	}
	// X|R|N|S|R|PID.
	x, s, pid := p[0]&0x80 != 0, p[0]&0x10 != 0, p[0]&0x07
	if !s || pid != 0 {
		return nil, false
	}
	i := 1
	if x {
		if len(p) < 2 {
			return nil, false
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: picture id
			if len(p) <= i {
				return nil, false
			}
			if p[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if ext&0x30 != 0 { // T or K: TID/KEYIDX byte
			i++
		}
	}
	if i > len(p) {
		return nil, false
	}
	return p[i:], true
}
