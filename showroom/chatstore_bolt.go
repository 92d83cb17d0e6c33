package showroom

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/streamd/streamd/internal/httpx"
)

// BoltChatStore is the ChatStore of a single node that keeps what staff
// decided — chat settings and bans — in the embedded database, so a muted
// troll stays muted after a restart. Send budgets are seconds-long and stay
// in memory. Reads are served from memory (loaded at start, written
// through), so a chat message never waits on a disk transaction.
type BoltChatStore struct {
	*MemoryChatStore
	db *bolt.DB
}

var (
	bChatSettings = []byte("chat_settings") // stream → settings JSON
	bChatBans     = []byte("chat_bans")     // stream \x00 viewer → mode
)

// NewBoltChatStore loads the settings and bans kept in db.
func NewBoltChatStore(db *bolt.DB) (*BoltChatStore, error) {
	m := NewMemoryChatStore()
	err := db.Update(func(tx *bolt.Tx) error {
		sb, err := tx.CreateBucketIfNotExists(bChatSettings)
		if err != nil {
			return err
		}
		bb, err := tx.CreateBucketIfNotExists(bChatBans)
		if err != nil {
			return err
		}
		if err := sb.ForEach(func(k, v []byte) error {
			s := defaultSettings()
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("chat settings of %s: %w", k, err)
			}
			if s.BlockedWords == nil {
				s.BlockedWords = []string{}
			}
			m.settings[string(k)] = s
			return nil
		}); err != nil {
			return err
		}
		return bb.ForEach(func(k, v []byte) error {
			stream, viewer, ok := bytes.Cut(k, []byte{0})
			if !ok {
				return nil
			}
			if m.bans[string(stream)] == nil {
				m.bans[string(stream)] = map[string]string{}
			}
			m.bans[string(stream)][string(viewer)] = string(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load chat moderation: %w", err)
	}
	return &BoltChatStore{MemoryChatStore: m, db: db}, nil
}

// SetSettings implements ChatStore.
func (b *BoltChatStore) SetSettings(ctx context.Context, stream string, s ChatSettings) (err error) {
	defer httpx.MarkBolt(&err)
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bChatSettings).Put([]byte(stream), v) }); err != nil {
		return fmt.Errorf("save chat settings: %w", err)
	}
	return b.MemoryChatStore.SetSettings(ctx, stream, s)
}

// SetBan implements ChatStore.
func (b *BoltChatStore) SetBan(ctx context.Context, stream, viewer, mode string) (err error) {
	defer httpx.MarkBolt(&err)
	k := append(append([]byte(stream), 0), viewer...)
	if err := b.db.Update(func(tx *bolt.Tx) error {
		if mode == "" {
			return tx.Bucket(bChatBans).Delete(k)
		}
		return tx.Bucket(bChatBans).Put(k, []byte(mode))
	}); err != nil {
		return fmt.Errorf("save chat ban: %w", err)
	}
	return b.MemoryChatStore.SetBan(ctx, stream, viewer, mode)
}
