package cart

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/testenv"
)

// benchBuyNow runs parallel buy-now checkouts (dev provider: reserve,
// order, commit, paid — each step durable) through the Service API and
// reports ops/s and the p99 latency.
func benchBuyNow(b *testing.B, st Store) {
	svc := &Service{Store: st}
	if err := svc.Initialize(); err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	ctx := context.Background()
	if _, err := svc.CreateProduct(ctx, ProductInput{ID: "bench", Title: "Bench", Price: Money{Amount: 100, Currency: "eur"}, Stock: 1 << 30}); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	b.SetParallelism(128) // many concurrent buyers per CPU, as in a flash sale
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			n := seq.Add(1)
			t0 := time.Now()
			_, _, err := svc.Checkout(ctx, CheckoutRequest{IdempotencyKey: fmt.Sprint("bench-", n), Buyer: fmt.Sprint("b", n%1000),
				Items: []CheckoutItem{{ProductID: "bench", Quantity: 1}}, Contact: &Contact{Email: "b@example.com", Name: "B"},
				Delivery: &Delivery{Method: DeliveryPickup}})
			if err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "orders/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

func BenchmarkBuyNowBolt(b *testing.B) { benchBuyNow(b, newBoltStore(b)) }

func BenchmarkBuyNowRedis(b *testing.B) { benchBuyNow(b, NewRedisStore(testenv.Redis(b, 7))) }
