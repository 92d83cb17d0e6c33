package sfu

import (
	mch264 "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// pictureSize reads the picture size a keyframe packet announces: an H.264
// SPS (alone or in a STAP-A), a VP8 keyframe's header. 0 when the packet
// carries none (other codecs: layers are then ranked by bitrate alone).
//
// Layers are ranked by it first: a browser ramping up its bandwidth
// estimate gives the small layers their bitrate before the larger ones,
// so for the first seconds the 640-wide layer may send fewer bytes than
// the 320-wide one, and a viewer asking for "low" would get the wrong one.
func pictureSize(k codecKind, p []byte) int {
	switch k {
	case codecH264:
		return h264PictureSize(p)
	case codecVP8:
		return vp8PictureSize(p)
	}
	return 0
}

func h264PictureSize(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	sps := func(nal []byte) int {
		var s mch264.SPS
		if len(nal) == 0 || nal[0]&0x1f != 7 || s.Unmarshal(nal) != nil {
			return 0
		}
		return s.Width() * s.Height()
	}
	switch p[0] & 0x1f {
	case 7:
		return sps(p)
	case 24: // STAP-A
		for nal := range stapA(p) {
			if px := sps(nal); px > 0 {
				return px
			}
		}
	}
	return 0
}

func vp8PictureSize(p []byte) int {
	if !vp8Keyframe(p) {
		return 0
	}
	// A keyframe's data: 3-byte frame tag, start code 9d 01 2a, then
	// 14-bit width and height.
	f, _ := vp8FrameStart(p)
	if len(f) < 10 || f[3] != 0x9d || f[4] != 0x01 || f[5] != 0x2a {
		return 0
	}
	w := int(f[6]) | int(f[7]&0x3f)<<8
	h := int(f[8]) | int(f[9]&0x3f)<<8
	return w * h
}
