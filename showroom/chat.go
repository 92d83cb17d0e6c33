// Chat moderation: the rules a viewer's message passes on the overlay
// socket (Check, the overlay's ChatPolicy) and the staff API: reply as
// staff, delete, pin, mute or shadow-ban, slow mode, on/off, blocked words.

package showroom

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/streamd/streamd/internal/httpx"
	"github.com/streamd/streamd/overlay"
)

// ChatOverlay is what the chat needs of the overlay.
type ChatOverlay interface {
	PublishChat(ctx context.Context, stream string, m overlay.ChatMessage) (overlay.Event, error)
	DeleteChat(ctx context.Context, stream, id string) (overlay.Event, error)
	PinChat(ctx context.Context, stream, id string, message json.RawMessage) (overlay.Event, error)
	SetChatMode(ctx context.Context, stream string, m overlay.ChatMode) (overlay.Event, error)
	ChatHistory(ctx context.Context, stream string) ([]json.RawMessage, json.RawMessage, error)
}

const (
	maxChatRunes    = 280
	maxSlow         = 10 * time.Minute
	maxBlockedWords = 500
	// The default per-viewer limit: about one message per 2 s, burst 3.
	defaultChatEvery = 2 * time.Second
	defaultChatBurst = 3
)

func newViewerID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "v_" + hex.EncodeToString(b[:])
}

func chatErr(code, msg string) error { return &overlay.ChatError{Code: code, Message: msg} }

// cleanText trims text and turns control characters into spaces.
func cleanText(text string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, text))
}

// Check implements overlay.ChatPolicy: the rules, in the order a viewer
// would want to hear about them.
func (s *Server) Check(ctx context.Context, stream string, v overlay.Viewer, ok bool, text string) (bool, error) {
	if !ok {
		return false, chatErr("no_viewer", "pick a display name first (POST /api/viewer), then reconnect")
	}
	text = cleanText(text)
	if text == "" {
		return false, chatErr("empty", "write something first")
	}
	if !utf8.ValidString(text) {
		return false, chatErr("bad_message", "the text must be UTF-8")
	}
	if utf8.RuneCountInString(text) > maxChatRunes {
		return false, chatErr("too_long", "messages are at most 280 characters")
	}
	set, err := s.ChatStore.Settings(ctx, stream)
	if err != nil {
		return false, err
	}
	if !set.Enabled {
		return false, chatErr("chat_off", "the host turned chat off for now")
	}
	ban, err := s.ChatStore.Ban(ctx, stream, v.ID)
	if err != nil {
		return false, err
	}
	if ban == BanMute {
		return false, chatErr("muted", "you can't send messages in this chat")
	}
	allowed, err := s.ChatStore.Allow(ctx, stream, v.ID, s.ChatEvery, s.ChatBurst, time.Duration(set.SlowS)*time.Second)
	if err != nil {
		return false, err
	}
	if !allowed {
		msg := "slow down: wait a moment before your next message"
		if set.SlowS > 0 {
			msg = "slow mode: one message every " + strconv.Itoa(set.SlowS) + " s"
		}
		return false, chatErr("rate_limited", msg)
	}
	return ban == BanShadow || blocked(text, set.BlockedWords), nil
}

// blocked reports whether text contains one of words as a whole word
// (case-insensitive), so "ass" does not block "class".
func blocked(text string, words []string) bool {
	if len(words) == 0 {
		return false
	}
	lt := strings.ToLower(text)
	isWord := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
	for _, w := range words {
		w = strings.ToLower(strings.TrimSpace(w))
		if w == "" {
			continue
		}
		for i := 0; ; {
			j := strings.Index(lt[i:], w)
			if j < 0 {
				break
			}
			start, end := i+j, i+j+len(w)
			before, _ := utf8.DecodeLastRuneInString(lt[:start])
			after, _ := utf8.DecodeRuneInString(lt[end:])
			if (start == 0 || !isWord(before)) && (end == len(lt) || !isWord(after)) {
				return true
			}
			i = start + 1
		}
	}
	return false
}

func (s *Server) registerChat(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/viewer", s.handleViewerPost)
	mux.HandleFunc("GET /api/viewer", s.handleViewerGet)
	mux.HandleFunc("GET /api/streams/{id}/chat", s.staffChat(s.handleChatGet))
	mux.HandleFunc("PATCH /api/streams/{id}/chat", s.staffChat(s.handleChatPatch))
	mux.HandleFunc("POST /api/streams/{id}/chat", s.staffChat(s.handleChatPost))
	mux.HandleFunc("DELETE /api/streams/{id}/chat/{msg}", s.staffChat(s.handleChatDelete))
	mux.HandleFunc("PUT /api/streams/{id}/chat/pin", s.staffChat(s.handlePin))
	mux.HandleFunc("DELETE /api/streams/{id}/chat/pin", s.staffChat(s.handlePin))
	mux.HandleFunc("POST /api/streams/{id}/chat/bans", s.staffChat(s.handleBan))
	mux.HandleFunc("DELETE /api/streams/{id}/chat/bans/{viewer}", s.staffChat(s.handleBan))
}

// staffChat checks the staff token and the stream before h.
func (s *Server) staffChat(h func(w http.ResponseWriter, r *http.Request, stream string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !httpx.RequireStaff(w, r, s.StaffToken) {
			return
		}
		stream := r.PathValue("id")
		if !s.requireStream(w, r, stream, "stream") {
			return
		}
		h(w, r, stream)
	}
}

func (s *Server) unavailable(w http.ResponseWriter, what string, err error) {
	s.Logger.Error("chat: "+what, "err", err)
	httpx.WriteError(w, http.StatusServiceUnavailable, "chat_unavailable", "could not "+what+"; retry")
}

type chatStateJSON struct {
	ChatSettings
	Bans     []banJSON         `json:"bans"`
	Messages []json.RawMessage `json:"messages"`
	Pin      json.RawMessage   `json:"pin"`
}

type banJSON struct {
	Viewer string `json:"viewer"`
	Mode   string `json:"mode"`
}

func (s *Server) handleChatGet(w http.ResponseWriter, r *http.Request, stream string) {
	set, err := s.ChatStore.Settings(r.Context(), stream)
	if err != nil {
		s.unavailable(w, "read the chat settings", err)
		return
	}
	bans, err := s.ChatStore.Bans(r.Context(), stream)
	if err != nil {
		s.unavailable(w, "read the bans", err)
		return
	}
	msgs, pin, err := s.ChatOverlay.ChatHistory(r.Context(), stream)
	if err != nil {
		s.unavailable(w, "read the chat", err)
		return
	}
	out := chatStateJSON{ChatSettings: set, Bans: []banJSON{}, Messages: msgs, Pin: pin}
	for v, m := range bans {
		out.Bans = append(out.Bans, banJSON{v, m})
	}
	slices.SortFunc(out.Bans, func(a, b banJSON) int { return strings.Compare(a.Viewer, b.Viewer) })
	if out.Messages == nil {
		out.Messages = []json.RawMessage{}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) handleChatPatch(w http.ResponseWriter, r *http.Request, stream string) {
	var req struct {
		Enabled      *bool     `json:"enabled"`
		SlowS        *int      `json:"slow_s"`
		BlockedWords *[]string `json:"blocked_words"`
	}
	if !httpx.DecodeJSON(w, r, 64<<10, &req) {
		return
	}
	set, err := s.ChatStore.Settings(r.Context(), stream)
	if err != nil {
		s.unavailable(w, "read the chat settings", err)
		return
	}
	before := set
	if req.Enabled != nil {
		set.Enabled = *req.Enabled
	}
	if req.SlowS != nil {
		if *req.SlowS < 0 || time.Duration(*req.SlowS)*time.Second > maxSlow {
			httpx.WriteError(w, http.StatusBadRequest, "invalid", "slow_s is 0 (off) to 600 seconds")
			return
		}
		set.SlowS = *req.SlowS
	}
	if req.BlockedWords != nil {
		words := []string{}
		for _, wd := range *req.BlockedWords {
			if wd = strings.TrimSpace(wd); wd != "" && !slices.Contains(words, strings.ToLower(wd)) {
				words = append(words, strings.ToLower(wd))
			}
		}
		if len(words) > maxBlockedWords {
			httpx.WriteError(w, http.StatusBadRequest, "invalid", "at most 500 blocked words")
			return
		}
		set.BlockedWords = words
	}
	if err := s.ChatStore.SetSettings(r.Context(), stream, set); err != nil {
		s.unavailable(w, "save the chat settings", err)
		return
	}
	if set.Enabled != before.Enabled || set.SlowS != before.SlowS {
		if _, err := s.ChatOverlay.SetChatMode(r.Context(), stream, overlay.ChatMode{Enabled: set.Enabled, SlowS: set.SlowS}); err != nil {
			s.unavailable(w, "tell viewers the chat settings", err)
			return
		}
	}
	httpx.WriteJSON(w, http.StatusOK, set)
}

// findMessage returns the kept message id of stream (visible to everyone).
func (s *Server) findMessage(ctx context.Context, stream, id string) (json.RawMessage, map[string]any, error) {
	msgs, _, err := s.ChatOverlay.ChatHistory(ctx, stream)
	if err != nil {
		return nil, nil, err
	}
	for _, raw := range msgs {
		var m map[string]any
		if json.Unmarshal(raw, &m) == nil && m["id"] == id {
			return raw, m, nil
		}
	}
	return nil, nil, nil
}

func (s *Server) handleChatPost(w http.ResponseWriter, r *http.Request, stream string) {
	var req struct {
		Text    string `json:"text"`
		Name    string `json:"name"`
		ReplyTo string `json:"reply_to"`
	}
	if !httpx.DecodeJSON(w, r, 8<<10, &req) {
		return
	}
	text := cleanText(req.Text)
	if text == "" || utf8.RuneCountInString(text) > maxChatRunes {
		httpx.WriteError(w, http.StatusBadRequest, "invalid", "text is 1 to 280 characters")
		return
	}
	name := "Host"
	if req.Name != "" {
		var ok bool
		if name, ok = cleanName(req.Name); !ok {
			httpx.WriteError(w, http.StatusBadRequest, "invalid", "name is 1 to 32 characters")
			return
		}
	}
	msg := overlay.ChatMessage{Author: overlay.ChatAuthor{ID: "staff", Name: name, Staff: true}, Text: text}
	if req.ReplyTo != "" {
		_, orig, err := s.findMessage(r.Context(), stream, req.ReplyTo)
		if err != nil {
			s.unavailable(w, "read the chat", err)
			return
		}
		if orig == nil {
			httpx.WriteError(w, http.StatusNotFound, "unknown_message", "no recent message "+req.ReplyTo)
			return
		}
		author, _ := orig["author"].(map[string]any)
		an, _ := author["name"].(string)
		at, _ := orig["text"].(string)
		msg.ReplyTo = &overlay.ChatRef{ID: req.ReplyTo, Name: an, Text: at}
	}
	ev, err := s.ChatOverlay.PublishChat(r.Context(), stream, msg)
	if err != nil {
		s.unavailable(w, "send the message", err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"id": ev.ID, "seq": ev.Seq})
}

func (s *Server) handleChatDelete(w http.ResponseWriter, r *http.Request, stream string) {
	id := r.PathValue("msg")
	if id == "" || len(id) > 64 {
		httpx.WriteError(w, http.StatusBadRequest, "invalid", "bad message id")
		return
	}
	ev, err := s.ChatOverlay.DeleteChat(r.Context(), stream, id)
	if err != nil {
		s.unavailable(w, "delete the message", err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "seq": ev.Seq})
}

func (s *Server) handlePin(w http.ResponseWriter, r *http.Request, stream string) {
	var req struct {
		ID string `json:"id"`
	}
	if r.Method == http.MethodPut && !httpx.DecodeJSON(w, r, 1<<10, &req) {
		return
	}
	var raw json.RawMessage
	if req.ID != "" {
		var err error
		if raw, _, err = s.findMessage(r.Context(), stream, req.ID); err != nil {
			s.unavailable(w, "read the chat", err)
			return
		}
		if raw == nil {
			httpx.WriteError(w, http.StatusNotFound, "unknown_message", "no recent message "+req.ID+" to pin")
			return
		}
	}
	ev, err := s.ChatOverlay.PinChat(r.Context(), stream, req.ID, raw)
	if err != nil {
		s.unavailable(w, "pin the message", err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"pin": raw, "seq": ev.Seq})
}

func (s *Server) handleBan(w http.ResponseWriter, r *http.Request, stream string) {
	req := banJSON{Viewer: r.PathValue("viewer")}
	if r.Method == http.MethodPost {
		if !httpx.DecodeJSON(w, r, 1<<10, &req) {
			return
		}
		if req.Mode != BanMute && req.Mode != BanShadow {
			httpx.WriteError(w, http.StatusBadRequest, "invalid", `mode is "mute" or "shadow"`)
			return
		}
	}
	if req.Viewer == "" || len(req.Viewer) > 64 {
		httpx.WriteError(w, http.StatusBadRequest, "invalid", "viewer is the author id of a message")
		return
	}
	if err := s.ChatStore.SetBan(r.Context(), stream, req.Viewer, req.Mode); err != nil {
		s.unavailable(w, "save the ban", err)
		return
	}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		status = http.StatusCreated
	}
	httpx.WriteJSON(w, status, req)
}
