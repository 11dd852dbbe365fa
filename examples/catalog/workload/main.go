// Command workload fills the sample media catalog (examples/catalog/schema.sql) with a few
// thousand rows and then changes it at a steady rate — updates, child moves between
// programs, tag links, renames, deletes and re-inserts — while printing a live summary of
// what wye made of it: events acknowledged by the indexer, documents per cluster, lag, errors.
//
//	go run ./examples/catalog/workload -dsn 'wye_app:wye-app@tcp(127.0.0.1:3306)/catalog' \
//	    -clusters es7=http://127.0.0.1:9217,es8=http://127.0.0.1:9218,os2=http://127.0.0.1:9219 \
//	    -metrics http://127.0.0.1:9464/metrics -duration 60s
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/wyehq/wye/examples/catalog/changes"
)

func main() {
	dsn := flag.String("dsn", "wye_app:wye-app@tcp(127.0.0.1:3306)/catalog", "catalog database")
	clusters := flag.String("clusters", "es7=http://127.0.0.1:9217,es8=http://127.0.0.1:9218,os2=http://127.0.0.1:9219", "name=url,... to count documents in")
	index := flag.String("index", "programs", "index (or alias) to count")
	metrics := flag.String("metrics", "http://127.0.0.1:9464/metrics", "wye's /metrics")
	rate := flag.Int("rate", 50, "changes per second after the seed")
	duration := flag.Duration("duration", time.Minute, "how long to change the catalog")
	programs := flag.Int("programs", 2000, "programs to seed (channels, episodes and tags scale with it)")
	create := flag.String("create", "", "only drop and create the dsn's database with this schema file, then exit")
	settle := flag.Duration("settle", 0, "after the workload, keep printing the summary this long (0: until Ctrl-C)")
	flag.Parse()
	if *create != "" {
		if err := changes.CreateDatabase(*dsn, *create); err != nil {
			log.Fatalf("create catalog: %v", err)
		}
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	db, err := sql.Open("mysql", *dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	w := changes.New(db)
	if err := w.Seed(ctx, *programs); err != nil {
		log.Fatalf("seed catalog: %v", err)
	}
	fmt.Printf("seeded: %d programs, %d episodes, %d tags\n", w.Count("programs"), w.Count("episodes"), w.Count("tags"))

	tick := time.NewTicker(time.Second / time.Duration(max(*rate, 1)))
	defer tick.Stop()
	report := time.NewTicker(2 * time.Second)
	defer report.Stop()
	end := time.After(*duration)
	made, failures := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-end:
			fmt.Println("workload done; wye keeps going — compare the counts until they settle, then Ctrl-C")
			var stopAt <-chan time.Time
			if *settle > 0 {
				stopAt = time.After(*settle)
			}
			for {
				select {
				case <-ctx.Done():
					return
				case <-stopAt:
					return
				case <-report.C:
					summary(made, failures, *clusters, *index, *metrics, w.Count("programs"))
				}
			}
		case <-report.C:
			summary(made, failures, *clusters, *index, *metrics, w.Count("programs"))
		case <-tick.C:
			if err := w.Step(ctx); err != nil {
				failures++
				continue
			}
			made++
		}
	}
}

// summary prints one line: changes made, programs in MySQL, the row changes cdc published,
// documents per cluster, and the indexer's acked messages (batches of changes), parked and
// retried messages, mean lag and slave misses.
func summary(made, failures int, clusters, index, metricsURL string, programs int) {
	var parts []string
	for _, c := range strings.Split(clusters, ",") {
		name, url, _ := strings.Cut(c, "=")
		parts = append(parts, fmt.Sprintf("%s=%s", name, docCount(url+"/"+index+"/_count")))
	}
	m := scrape(metricsURL)
	lag := "-"
	if n := m["wye_indexer_lag_seconds_count"]; n > 0 {
		lag = fmt.Sprintf("%.2fs", m["wye_indexer_lag_seconds_sum"]/n)
	}
	fmt.Printf("%s changes=%d (failed %d) mysql_programs=%d cdc_events=%.0f docs[%s] acked_msgs=%.0f parked=%.0f retried=%.0f mean_lag=%s slave_misses=%.0f\n",
		time.Now().Format("15:04:05"), made, failures, programs, m["wye_cdc_published_total"], strings.Join(parts, " "),
		m[`wye_indexer_messages_total{result="acked"}`], m[`wye_indexer_messages_total{result="parked"}`],
		m[`wye_indexer_messages_total{result="retried"}`], lag, m["wye_indexer_ledger_entries_total"])
}

func docCount(url string) string {
	res, err := http.Get(url)
	if err != nil {
		return "down"
	}
	defer res.Body.Close()
	var c struct {
		Count int `json:"count"`
	}
	if json.NewDecoder(res.Body).Decode(&c) != nil || res.StatusCode != 200 {
		return "?"
	}
	return fmt.Sprint(c.Count)
}

// scrape reads a Prometheus text page into series -> value; a series with labels is also
// summed under its bare name.
func scrape(url string) map[string]float64 {
	out := map[string]float64{}
	res, err := http.Get(url)
	if err != nil {
		return out
	}
	defer res.Body.Close()
	s := bufio.NewScanner(res.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		var v float64
		fmt.Sscanf(line[i+1:], "%g", &v)
		series := line[:i]
		out[series] += v
		if j := strings.IndexByte(series, '{'); j > 0 {
			out[series[:j]] += v
		}
	}
	return out
}
