package hls

import (
	"strings"
	"testing"

	"github.com/streamd/streamd/egress/record"
)

// TestPlaylist: VOD with ENDLIST once ended, EVENT while recording; a new
// init segment (codec parameters changed) is a discontinuity with its map;
// every segment carries its program date-time.
func TestPlaylist(t *testing.T) {
	segs := []record.Segment{
		{N: 1, File: "000001.m4s", Init: "init-1.mp4", Start: 0, Dur: 2.002, PDT: 1764752400000},
		{N: 2, File: "000002.m4s", Init: "init-1.mp4", Start: 2.002, Dur: 1.5, PDT: 1764752402002},
		{N: 3, File: "000003.m4s", Init: "init-2.mp4", Start: 3.502, Dur: 2.7, PDT: 1764752403502},
	}
	vod := Playlist(segs, true)
	for _, want := range []string{"#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-TARGETDURATION:3", "#EXT-X-MAP:URI=\"init-1.mp4\"",
		"#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-2.mp4\"", "#EXT-X-PROGRAM-DATE-TIME:2025-12-03T09:00:02.002Z\n#EXTINF:1.50000,\n000002.m4s", "#EXT-X-ENDLIST"} {
		if !strings.Contains(vod, want) {
			t.Fatalf("VOD playlist lacks %q:\n%s", want, vod)
		}
	}
	live := Playlist(segs[:1], false)
	if !strings.Contains(live, "#EXT-X-PLAYLIST-TYPE:EVENT") || strings.Contains(live, "ENDLIST") {
		t.Fatalf("recording show's playlist:\n%s", live)
	}
}
