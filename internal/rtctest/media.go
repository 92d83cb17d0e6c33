package rtctest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// EncodeH264 makes an Annex-B H.264 clip with ffmpeg (testsrc2, no B-frames,
// an access unit delimiter before each frame) and returns its access units.
func EncodeH264(ffmpeg, dir string, width, height, fps, seconds, gop int, bitrate string) ([][]byte, error) {
	out := filepath.Join(dir, fmt.Sprintf("clip-%dx%d-%d-%d.h264", width, height, fps, gop))
	if _, err := os.Stat(out); err != nil {
		args := []string{"-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
			fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", width, height, fps), "-t", fmt.Sprint(seconds),
			"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline",
			"-g", fmt.Sprint(gop), "-bf", "0", "-pix_fmt", "yuv420p", "-x264-params", "aud=1"}
		if bitrate != "" {
			args = append(args, "-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate)
		}
		args = append(args, "-f", "h264", out)
		if b, err := exec.Command(ffmpeg, args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ffmpeg: %v: %s", err, b)
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	return SplitAccessUnits(data), nil
}

// SplitAccessUnits splits an Annex-B stream at access unit delimiters.
func SplitAccessUnits(data []byte) [][]byte {
	var aus [][]byte
	start := -1
	for i := 0; i+4 < len(data); i++ {
		if data[i] == 0 && data[i+1] == 0 && data[i+2] == 1 && data[i+3]&0x1f == 9 {
			s := i
			if i > 0 && data[i-1] == 0 {
				s = i - 1
			}
			if start >= 0 {
				aus = append(aus, data[start:s])
			}
			start = s
		}
	}
	if start >= 0 {
		aus = append(aus, data[start:])
	}
	return aus
}

// IsIDR reports whether an Annex-B access unit holds an IDR slice.
func IsIDR(au []byte) bool {
	for _, nal := range bytes.Split(au, []byte{0, 0, 1}) {
		if len(nal) > 0 && nal[0]&0x1f == 5 {
			return true
		}
	}
	return false
}

// OpusSilence is one valid 20 ms Opus frame (a silence TOC), enough to
// exercise the audio path without an encoder.
var OpusSilence = []byte{0xf8, 0xff, 0xfe}
