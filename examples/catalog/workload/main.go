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
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
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
		if err := createDatabase(*dsn, *create); err != nil {
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
	w := &workload{db: db, rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))}
	if err := w.seed(ctx, *programs); err != nil {
		log.Fatalf("seed catalog: %v", err)
	}
	fmt.Printf("seeded: %d programs, %d episodes, %d tags\n", w.count("programs"), w.count("episodes"), w.count("tags"))

	tick := time.NewTicker(time.Second / time.Duration(max(*rate, 1)))
	defer tick.Stop()
	report := time.NewTicker(2 * time.Second)
	defer report.Stop()
	end := time.After(*duration)
	changes, failures := 0, 0
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
					summary(changes, failures, *clusters, *index, *metrics, w.count("programs"))
				}
			}
		case <-report.C:
			summary(changes, failures, *clusters, *index, *metrics, w.count("programs"))
		case <-tick.C:
			if err := w.step(ctx); err != nil {
				failures++
				continue
			}
			changes++
		}
	}
}

// createDatabase (re)creates the dsn's database and runs the schema file in it.
func createDatabase(dsn, schema string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return err
	}
	ddl, err := os.ReadFile(schema)
	if err != nil {
		return err
	}
	name := cfg.DBName
	cfg.DBName, cfg.MultiStatements = "", true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("DROP DATABASE IF EXISTS `" + name + "`; CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4; USE `" + name + "`; " + string(ddl)); err != nil {
		return err
	}
	return nil
}

type workload struct {
	db   *sql.DB
	rnd  *rand.Rand
	next int
}

func (w *workload) count(table string) int {
	var n int
	w.db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n)
	return n
}

func (w *workload) exec(ctx context.Context, q string, args ...any) error {
	_, err := w.db.ExecContext(ctx, q, args...)
	return err
}

// pick returns a random id of table, or 0 when it is empty.
func (w *workload) pick(table string) int {
	var id int
	w.db.QueryRow("SELECT id FROM " + table + " ORDER BY RAND() LIMIT 1").Scan(&id)
	return id
}

func (w *workload) seed(ctx context.Context, programs int) error {
	w.db.QueryRow("SELECT COALESCE(MAX(id), 0) FROM programs").Scan(&w.next)
	if w.next > 0 {
		return nil // already seeded
	}
	ins := func(q string, rows int, row func(i int) []any) error {
		for i := 1; i <= rows; i++ {
			if err := w.exec(ctx, q, row(i)...); err != nil {
				return err
			}
		}
		return nil
	}
	nets, chans, tags := 5, max(programs/60, 5), 50
	if err := ins("INSERT INTO networks (id, name) VALUES (?, ?)", nets, func(i int) []any { return []any{i, fmt.Sprintf("Network %d", i)} }); err != nil {
		return err
	}
	if err := ins("INSERT INTO channels (id, name, network_id) VALUES (?, ?, ?)", chans, func(i int) []any {
		return []any{i, fmt.Sprintf("Channel %d", i), 1 + w.rnd.IntN(nets)}
	}); err != nil {
		return err
	}
	if err := ins("INSERT INTO tags (id, name) VALUES (?, ?)", tags, func(i int) []any { return []any{i, fmt.Sprintf("tag-%d", i)} }); err != nil {
		return err
	}
	if err := ins("INSERT INTO programs (id, title, channel_id, duration_s, rating, code, updated_at) VALUES (?, ?, ?, ?, ?, ?, NOW())", programs, func(i int) []any {
		return []any{i, fmt.Sprintf("Program %d", i), 1 + w.rnd.IntN(chans), w.rnd.IntN(7200), fmt.Sprintf("%.1f", float64(w.rnd.IntN(100))/10), fmt.Sprintf("P-%05d", i)}
	}); err != nil {
		return err
	}
	if err := ins("INSERT INTO episodes (id, program_id, number, title) VALUES (?, ?, ?, ?)", programs*2, func(i int) []any {
		return []any{i, 1 + w.rnd.IntN(programs), w.rnd.IntN(50), fmt.Sprintf("Episode %d", i)}
	}); err != nil {
		return err
	}
	if err := ins("INSERT IGNORE INTO program_tags (program_id, tag_id) VALUES (?, ?)", programs*2, func(int) []any {
		return []any{1 + w.rnd.IntN(programs), 1 + w.rnd.IntN(tags)}
	}); err != nil {
		return err
	}
	w.next = programs
	return nil
}

// step makes one random change, as the e2e workload does (e2e/indexer_catalog_test.go).
func (w *workload) step(ctx context.Context) error {
	switch n := w.rnd.IntN(100); {
	case n < 25:
		return w.exec(ctx, "UPDATE programs SET title = ?, duration_s = ?, updated_at = NOW() WHERE id = ?", fmt.Sprintf("Retitled %d", w.rnd.IntN(1e6)), w.rnd.IntN(7200), w.pick("programs"))
	case n < 35:
		return w.exec(ctx, "UPDATE programs SET channel_id = ? WHERE id = ?", w.pick("channels"), w.pick("programs"))
	case n < 40: // delete a program with its children (no cascades: they would not be in the binlog)
		id := w.pick("programs")
		if err := w.exec(ctx, "DELETE FROM episodes WHERE program_id = ?", id); err != nil {
			return err
		}
		if err := w.exec(ctx, "DELETE FROM program_tags WHERE program_id = ?", id); err != nil {
			return err
		}
		return w.exec(ctx, "DELETE FROM programs WHERE id = ?", id)
	case n < 45:
		w.next++
		return w.exec(ctx, "INSERT INTO programs (id, title, channel_id, duration_s, code, updated_at) VALUES (?, ?, ?, 0, ?, NOW())", w.next, fmt.Sprintf("Program %d", w.next), w.pick("channels"), fmt.Sprintf("P-%05d", w.next))
	case n < 60:
		return w.exec(ctx, "UPDATE episodes SET program_id = ? WHERE id = ?", w.pick("programs"), w.pick("episodes")) // a child moves
	case n < 70:
		w.next++
		return w.exec(ctx, "INSERT INTO episodes (id, program_id, number, title) VALUES (?, ?, 1, 'New episode')", 1_000_000+w.next, w.pick("programs"))
	case n < 85:
		p, t := w.pick("programs"), w.pick("tags")
		if w.rnd.IntN(2) == 0 {
			return w.exec(ctx, "INSERT IGNORE INTO program_tags (program_id, tag_id) VALUES (?, ?)", p, t)
		}
		return w.exec(ctx, "DELETE FROM program_tags WHERE program_id = ? AND tag_id = ?", p, t)
	case n < 92:
		id := w.pick("tags")
		return w.exec(ctx, "UPDATE tags SET name = ? WHERE id = ?", fmt.Sprintf("tag-%d-%d", id, w.rnd.IntN(1000)), id)
	default:
		id := w.pick("channels")
		return w.exec(ctx, "UPDATE channels SET name = ? WHERE id = ?", fmt.Sprintf("Channel %d/%d", id, w.rnd.IntN(1000)), id)
	}
}

// summary prints one line: changes made, programs in MySQL, the row changes cdc published,
// documents per cluster, and the indexer's acked messages (batches of changes), parked and
// retried messages, mean lag and slave misses.
func summary(changes, failures int, clusters, index, metricsURL string, programs int) {
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
		time.Now().Format("15:04:05"), changes, failures, programs, m["wye_cdc_published_total"], strings.Join(parts, " "),
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
