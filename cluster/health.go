package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// healthWait bounds how long the engine waits for indices that do not exist before it answers
// red (its default is 30 s).
const healthWait = 2 * time.Second

// Health returns the health (green, yellow, red) of indices (names or aliases), or of the
// whole cluster when indices is empty (_cluster/health).
func (c *Client) Health(ctx context.Context, indices []string) (string, error) {
	status, resp, err := c.Do(ctx, esapi.ClusterHealthRequest{Index: indices, Timeout: healthWait})
	if err != nil {
		return "", err
	}
	// An index that does not exist makes the engine wait for it: after healthWait it answers
	// 408 with the status red, which is the answer.
	if status != 408 {
		if err := c.Check("health", status, resp); err != nil {
			return "", err
		}
	}
	var res struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(resp, &res); err != nil {
		return "", fmt.Errorf("decode health of cluster %s: %w", c.name, err)
	}
	return res.Status, nil
}
