package queue

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"
)

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{"QUEUE_SERVING_PORT": "9012", "USER_PORT": "3000", "REVISION_TIMEOUT_SECONDS": "60"}
	c, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.ServingPort != 9012 || c.UserPort != 3000 || c.AdminPort != 8022 || c.DrainTimeout != time.Minute {
		t.Errorf("config = %+v", c)
	}
	_, err = ConfigFromEnv(func(k string) string { return map[string]string{"USER_PORT": "http"}[k] })
	if err == nil || err.Error() != `USER_PORT: "http" is not a port` {
		t.Errorf("err = %v, want one naming USER_PORT", err)
	}
}

func TestHandlerForwardsToTheUserPort(t *testing.T) {
	user := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("hello " + r.URL.Path + " " + r.Host))
	}))
	defer user.Close()
	u, _ := url.Parse(user.URL)
	port, _ := strconv.Atoi(u.Port())
	q := httptest.NewServer(Handler(port))
	defer q.Close()
	req, _ := http.NewRequest(http.MethodGet, q.URL+"/x", nil)
	req.Host = "hello.default.localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "hello /x hello.default.localhost" {
		t.Errorf("body = %q, want the user container's answer with the original Host", b)
	}
}

func TestHandlerAnswers502WhenTheUserContainerIsDown(t *testing.T) {
	q := httptest.NewServer(Handler(1))
	defer q.Close()
	resp, err := http.Get(q.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status = %d, want 502", resp.StatusCode)
	}
}
