package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// Max returns the highest value of the numeric field over indices (names or patterns; missing
// ones are ignored), by a max aggregation; ok is false when no document has the field. The
// engines answer a double: exact up to 2^53.
func (c *Client) Max(ctx context.Context, indices []string, field string) (value float64, ok bool, err error) {
	body, err := json.Marshal(map[string]any{"size": 0, "track_total_hits": false,
		"aggs": map[string]any{"highest": map[string]any{"max": map[string]any{"field": field}}}})
	if err != nil {
		return 0, false, err
	}
	yes := true
	status, resp, err := c.Do(ctx, esapi.SearchRequest{Index: indices, Body: bytes.NewReader(body),
		IgnoreUnavailable: &yes, AllowNoIndices: &yes})
	if err != nil {
		return 0, false, err
	}
	if err := c.Check("search", status, resp); err != nil {
		return 0, false, err
	}
	var res struct {
		Aggregations struct {
			Highest struct {
				Value *float64 `json:"value"`
			} `json:"highest"`
		} `json:"aggregations"`
	}
	if err := json.Unmarshal(resp, &res); err != nil {
		return 0, false, fmt.Errorf("decode max aggregation: %w", err)
	}
	if res.Aggregations.Highest.Value == nil {
		return 0, false, nil
	}
	return *res.Aggregations.Highest.Value, true, nil
}
