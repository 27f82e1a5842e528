package poll

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	calls := 0
	err := Wait(context.Background(), 5*time.Second, func(context.Context) (bool, error) {
		calls++
		return calls == 3, errors.New("not yet")
	})
	if err != nil || calls != 3 {
		t.Errorf("Wait = %v after %d calls, want nil after 3", err, calls)
	}

	err = Wait(context.Background(), 50*time.Millisecond, func(context.Context) (bool, error) {
		return false, errors.New("pod is Pending")
	})
	if err == nil || !strings.Contains(err.Error(), "not done within 50ms") || !strings.Contains(err.Error(), "pod is Pending") {
		t.Errorf("timed-out Wait = %v, want the timeout and the last reason", err)
	}

	calls = 0
	began := time.Now()
	err = Wait(context.Background(), time.Minute, func(context.Context) (bool, error) {
		calls++
		return false, Stop(errors.New("forbidden"))
	})
	if err == nil || err.Error() != "forbidden" || calls != 1 || time.Since(began) > time.Second {
		t.Errorf("stopped Wait = %v after %d calls, want forbidden at once", err, calls)
	}
}
