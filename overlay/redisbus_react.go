// Reactions on the Redis bus: every node adds its taps to one pending hash;
// whichever node finds the gate open publishes them all, so a stream gets at
// most one reactions event per period however many nodes its viewers use.

package overlay

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// reactScript adds counts to the pending reactions and publishes them all
// unless the gate (one reactions event per period, for every node) is shut.
// ARGV: new epoch, history size, channel, period ms, then emoji, count
// pairs. server_time is Redis' clock, the one that keeps the period.
var reactScript = redis.NewScript(luaPublish + `
for i = 5, #ARGV, 2 do redis.call('HINCRBY', KEYS[7], ARGV[i], ARGV[i + 1]) end
if redis.call('EXISTS', KEYS[7]) == 0 then return {0} end
if not redis.call('SET', KEYS[8], '1', 'NX', 'PX', ARGV[4]) then return {2} end
local all = redis.call('HGETALL', KEYS[7])
redis.call('DEL', KEYS[7])
local parts = {}
for i = 1, #all, 2 do parts[#parts + 1] = cjson.encode(all[i]) .. ':' .. all[i + 1] end
local t = redis.call('TIME')
local ms = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
local seq, epoch = publish(ARGV[1], 'reactions', '"counts":{' .. table.concat(parts, ',') .. '},"server_time":' .. ms .. '}', ARGV[2], ARGV[3], '', '')
return {1, seq, epoch}
`)

// React implements Bus.
func (b *RedisBus) React(ctx context.Context, stream string, counts map[string]int, every time.Duration) (Event, bool, error) {
	if b.ctx.Err() != nil {
		return Event{}, false, ErrBusClosed
	}
	args := []any{newID(), b.historySize, b.channel(stream), max(1, every.Milliseconds())}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		if counts[k] > 0 {
			args = append(args, k, counts[k])
		}
	}
	res, err := reactScript.Run(ctx, b.c, streamKeys(stream), args...).Slice()
	if err != nil {
		return Event{}, false, fmt.Errorf("overlay: redis react: %w", err)
	}
	if r, _ := res[0].(int64); r != 1 || len(res) != 3 {
		return Event{}, r == 2, nil
	}
	seq, _ := res[1].(int64)
	epoch, _ := res[2].(string)
	if err := b.remember(ctx, stream, seq); err != nil {
		return Event{}, false, err
	}
	// Data stays empty: Lua built it, subscribers get it delivered.
	return Event{Stream: stream, Type: "reactions", Seq: uint64(seq), Epoch: epoch}, false, nil
}
