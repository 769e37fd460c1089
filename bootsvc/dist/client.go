package dist

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// FetchStatus asks the boot service at baseURL (its HTTP public URL) for
// every transfer's status.
func FetchStatus(ctx context.Context, baseURL string) ([]TransferStatus, error) {
	u := strings.TrimRight(baseURL, "/") + Prefix + "status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("dist status: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dist status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("dist status %s: %s: %s", u, resp.Status, strings.TrimSpace(string(msg)))
	}
	var out []TransferStatus
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("dist status %s: %w", u, err)
	}
	return out, nil
}

// FetchMulticastStatus asks the boot service at baseURL for its multicast
// senders and their receivers.
func FetchMulticastStatus(ctx context.Context, baseURL string) ([]MulticastStatus, error) {
	u := strings.TrimRight(baseURL, "/") + MulticastPrefix + "status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("multicast status: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("multicast status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("multicast status %s: %s: %s", u, resp.Status, strings.TrimSpace(string(msg)))
	}
	var out []MulticastStatus
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("multicast status %s: %w", u, err)
	}
	return out, nil
}
