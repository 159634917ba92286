package auth

import (
	"sync"
	"sync/atomic"
	"time"
)

const (
	maxCachedTokens = 50_000
	maxCachedUsers  = 50_000
	// maxCachedSessions bounds the session-to-user map; past it, an
	// evicted session costs one query when next seen.
	maxCachedSessions = 200_000
)

// boundedMap is a map with a size cap: past it, entries go (expired ones
// first, then an arbitrary eighth), so memory stays bounded whatever the traffic.
type boundedMap[V any] struct {
	mu      sync.RWMutex
	m       map[string]V
	max     int
	expired func(V) bool
}

func newBoundedMap[V any](max int, expired func(V) bool) *boundedMap[V] {
	return &boundedMap[V]{m: make(map[string]V), max: max, expired: expired}
}

func (b *boundedMap[V]) get(k string) (V, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	v, ok := b.m[k]
	return v, ok
}

func (b *boundedMap[V]) put(k string, v V) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.m) >= b.max {
		for key, old := range b.m {
			if b.expired != nil && b.expired(old) {
				delete(b.m, key)
			}
		}
		drop := len(b.m) - b.max + b.max/8
		for key := range b.m { // map order is random
			if drop <= 0 {
				break
			}
			delete(b.m, key)
			drop--
		}
	}
	b.m[k] = v
}

// sweep drops the expired entries, so that a map whose entries expire
// holds what is live, not everything until the cap.
func (b *boundedMap[V]) sweep() {
	if b.expired == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for key, v := range b.m {
		if b.expired(v) {
			delete(b.m, key)
		}
	}
}

func (b *boundedMap[V]) len() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.m)
}

func (b *boundedMap[V]) delete(k string) {
	b.mu.Lock()
	delete(b.m, k)
	b.mu.Unlock()
}

func (b *boundedMap[V]) clear() {
	b.mu.Lock()
	clear(b.m)
	b.mu.Unlock()
}

// userCache holds users for /v1/me and the admin check. A fill that raced
// an invalidation is dropped: put stores only if no invalidation happened
// since generation(), checked and stored under the lock that invalidate
// takes, so that no invalidation can fall between the check and the store.
type userCache struct {
	mu  sync.Mutex // orders put's check-and-store against invalidate
	m   *boundedMap[User]
	gen atomic.Uint64
}

func newUserCache(max int) *userCache { return &userCache{m: newBoundedMap[User](max, nil)} }

func (c *userCache) generation() uint64 { return c.gen.Load() }

func (c *userCache) get(id string) (User, bool) { return c.m.get(id) }

func (c *userCache) put(u User, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() == gen {
		c.m.put(u.ID, u)
	}
}

// invalidate drops one user, or every user when id is "".
func (c *userCache) invalidate(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	if id == "" {
		c.m.clear()
	} else {
		c.m.delete(id)
	}
}

// verifiedToken is a token whose signature and claims were checked; only
// its expiry needs checking again. The revocation check is never cached.
type verifiedToken struct {
	p       Principal
	validTo time.Time // exp + leeway
}
