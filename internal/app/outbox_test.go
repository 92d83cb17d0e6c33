package app

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOutbox: with no --smtp the receipts land in <data>/outbox and the
// orders desk lists them (staff only).
func TestOutbox(t *testing.T) {
	a := startApp(t, nil)
	base := a.BaseURL()
	createShop(t, a, "ob")
	var o struct {
		OrderID    string `json:"order_id"`
		PickupCode string `json:"pickup_code"`
	}
	body := map[string]any{"items": []map[string]any{{"product_id": "mug", "quantity": 2}}, "stream": "ob",
		"buyer": map[string]any{"email": "cleo@example.com", "name": "Cléo Martin"}, "delivery": map[string]any{"method": "pickup"}}
	if code := api(t, "POST", base+"/api/checkout", "", body, &o); code != 400 {
		t.Fatalf("checkout without a key: %d", code) // api() sends no Idempotency-Key
	}
	if code := apiWithHeader(t, "POST", base+"/api/checkout", map[string]string{"Idempotency-Key": "ob-1"}, body); code != 201 {
		t.Fatalf("checkout: %d", code)
	}
	var orders struct {
		Orders []struct {
			OrderID    string `json:"order_id"`
			PickupCode string `json:"pickup_code"`
		}
	}
	api(t, "GET", base+"/api/orders?stream=ob", testStaff, nil, &orders)
	if len(orders.Orders) != 1 {
		t.Fatalf("orders %+v", orders)
	}
	o = orders.Orders[0]
	var list struct {
		SMTP  bool
		Mails []struct{ Name, To, Subject string }
	}
	ref := strings.ToUpper(o.OrderID[:8])
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code := api(t, "GET", base+"/api/outbox", testStaff, nil, &list); code != 200 {
			t.Fatalf("outbox: %d", code)
		}
		if len(list.Mails) == 1 || time.Now().After(deadline) {
			break
		}
	}
	if list.SMTP || len(list.Mails) != 1 || list.Mails[0].Subject != "Order "+ref+" confirmed" || !strings.Contains(list.Mails[0].To, "cleo@example.com") {
		t.Fatalf("outbox list %+v", list)
	}
	if _, err := os.Stat(filepath.Join(a.Config.Data, "outbox", list.Mails[0].Name)); err != nil {
		t.Fatalf("not in the data dir: %v", err)
	}
	if code := api(t, "GET", base+"/api/outbox", "", nil, nil); code != 401 {
		t.Fatalf("outbox without the staff token: %d", code)
	}
	r2, _ := http.NewRequest("GET", base+"/api/outbox/"+list.Mails[0].Name, nil)
	r2.Header.Set("Authorization", "Bearer "+testStaff)
	res, err := http.DefaultClient.Do(r2)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	mail := string(raw)
	for _, want := range []string{o.PickupCode, "Ember Ceramic Mug", "48.00 EUR", "/order/" + o.OrderID + "?t=", "text/html", "TEST MODE"} {
		if !strings.Contains(mail, want) {
			t.Fatalf("the receipt lacks %q:\n%s", want, mail)
		}
	}
}
