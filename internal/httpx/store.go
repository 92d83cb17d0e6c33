package httpx

import (
	"errors"

	"github.com/redis/go-redis/v9"
	berrors "go.etcd.io/bbolt/errors"
)

// MarkRedis (deferred by Redis stores with a named error result) marks an
// error that means Redis could not be reached (down, restarting and still
// loading its data, failing over, pool exhausted) as ErrStoreUnavailable.
func MarkRedis(err *error) {
	*err = Unavailable(*err, redis.IsLoadingError, redis.IsReadOnlyError, redis.IsMasterDownError,
		redis.IsTryAgainError, redis.IsClusterDownError, func(e error) bool {
			return errors.Is(e, redis.ErrClosed) || errors.Is(e, redis.ErrPoolTimeout) || errors.Is(e, redis.ErrPoolExhausted)
		})
}

// MarkBolt (deferred by bbolt stores) marks an error that means the bbolt
// file cannot be used (closed at shutdown, lock timeout) as ErrStoreUnavailable.
func MarkBolt(err *error) {
	*err = Unavailable(*err, func(e error) bool {
		return errors.Is(e, berrors.ErrDatabaseNotOpen) || errors.Is(e, berrors.ErrTimeout)
	})
}
