package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// indexerCatalog is a randomized workload on the sample catalog. It applies each change to
// MariaDB and, once committed, publishes the change event cdc would publish (full before and
// after images in the documented encoding), so the indexer can be tested whatever the state
// of cdc. It keeps the rows in memory only to build the images.
type indexerCatalog struct {
	r       *indexerRig
	rnd     *rand.Rand
	rows    map[string]map[int]map[string]any // table -> id -> row
	links   map[[2]int]bool                   // program_tags
	next    int
	deleted []int // program ids deleted, to be inserted again
	counts  map[string]int
}

func newIndexerCatalog(r *indexerRig, seed uint64) *indexerCatalog {
	c := &indexerCatalog{r: r, rnd: rand.New(rand.NewPCG(seed, seed)), links: map[[2]int]bool{}, next: 1, counts: map[string]int{},
		rows: map[string]map[int]map[string]any{"networks": {}, "channels": {}, "programs": {}, "episodes": {}, "tags": {}}}
	return c
}

func (c *indexerCatalog) id() int { c.next++; return c.next }

func (c *indexerCatalog) pick(table string) (int, map[string]any, bool) {
	rows := c.rows[table]
	if len(rows) == 0 {
		return 0, nil, false
	}
	ids := slices.Sorted(maps.Keys(rows))
	id := ids[c.rnd.IntN(len(ids))]
	return id, rows[id], true
}

func (c *indexerCatalog) nullableChannel() any {
	if id, _, ok := c.pick("channels"); ok && c.rnd.IntN(10) > 0 {
		return id
	}
	return nil
}

func (c *indexerCatalog) exec(q string, args ...any) {
	c.r.t.Helper()
	if _, err := c.r.app.Exec(q, args...); err != nil {
		c.r.t.Fatalf("%s %v: %v", q, args, err)
	}
}

// insert writes a row and publishes its insert event.
func (c *indexerCatalog) insert(table string, row map[string]any) {
	c.r.t.Helper()
	cols := slices.Sorted(maps.Keys(row))
	args := make([]any, len(cols))
	for i, k := range cols {
		args[i] = row[k]
	}
	c.exec(fmt.Sprintf("INSERT INTO %s (%s) VALUES (?%s)", table, join(cols), repeat(",?", len(cols)-1)), args...)
	if table != "program_tags" {
		c.rows[table][row["id"].(int)] = row
	}
	c.r.publish(table, "insert", nil, row)
	c.counts[table+".insert"]++
}

func (c *indexerCatalog) update(table string, id int, set map[string]any) {
	c.r.t.Helper()
	before := c.rows[table][id]
	after := maps.Clone(before)
	maps.Copy(after, set)
	cols := slices.Sorted(maps.Keys(set))
	var args []any
	q := "UPDATE " + table + " SET "
	for i, k := range cols {
		if i > 0 {
			q += ", "
		}
		q += k + " = ?"
		args = append(args, set[k])
	}
	c.exec(q+" WHERE id = ?", append(args, id)...)
	c.rows[table][id] = after
	c.r.publish(table, "update", before, after)
	c.counts[table+".update"]++
}

func (c *indexerCatalog) delete(table string, id int) {
	c.r.t.Helper()
	before := c.rows[table][id]
	c.exec("DELETE FROM "+table+" WHERE id = ?", id)
	delete(c.rows[table], id)
	c.r.publish(table, "delete", before, nil)
	c.counts[table+".delete"]++
}

func (c *indexerCatalog) link(p, t int, add bool) {
	row := map[string]any{"program_id": p, "tag_id": t}
	if add {
		c.exec("INSERT INTO program_tags (program_id, tag_id) VALUES (?, ?)", p, t)
		c.links[[2]int{p, t}] = true
		c.r.publish("program_tags", "insert", nil, row)
	} else {
		c.exec("DELETE FROM program_tags WHERE program_id = ? AND tag_id = ?", p, t)
		delete(c.links, [2]int{p, t})
		c.r.publish("program_tags", "delete", row, nil)
	}
	c.counts["program_tags"]++
}

func (c *indexerCatalog) program(id int) map[string]any {
	var rating any
	if c.rnd.IntN(4) > 0 {
		rating = strconv.FormatFloat(float64(c.rnd.IntN(100))/10, 'f', 1, 64)
	}
	return map[string]any{"id": id, "title": fmt.Sprintf("Program %d ü %d", id, c.rnd.IntN(1000)), "channel_id": c.nullableChannel(),
		"duration_s": c.rnd.IntN(7200), "rating": rating, "code": fmt.Sprintf("P-%05d", id),
		"updated_at":    time.Date(2026, 1, 1+c.rnd.IntN(300), c.rnd.IntN(24), c.rnd.IntN(60), c.rnd.IntN(60), 0, time.UTC).Format(time.DateTime),
		"internal_note": nil}
}

// seed creates a small catalog.
func (c *indexerCatalog) seed(networks, channels, programs, episodes, tags int) {
	for range networks {
		id := c.id()
		c.insert("networks", map[string]any{"id": id, "name": fmt.Sprintf("Network %d", id)})
	}
	for range channels {
		id := c.id()
		var nw any
		if n, _, ok := c.pick("networks"); ok {
			nw = n
		}
		c.insert("channels", map[string]any{"id": id, "name": fmt.Sprintf("Channel %d", id), "network_id": nw})
	}
	for range tags {
		id := c.id()
		c.insert("tags", map[string]any{"id": id, "name": fmt.Sprintf("tag-%d", id)})
	}
	for range programs {
		c.insert("programs", c.program(c.id()))
	}
	for range episodes {
		p, _, _ := c.pick("programs")
		id := c.id()
		c.insert("episodes", map[string]any{"id": id, "program_id": p, "number": c.rnd.IntN(50), "title": fmt.Sprintf("Episode %d", id)})
	}
	for range programs * 2 {
		p, _, _ := c.pick("programs")
		t, _, _ := c.pick("tags")
		if !c.links[[2]int{p, t}] {
			c.link(p, t, true)
		}
	}
}

// step applies one random change: updates, child moves between parents, many-to-many
// changes, renames that only a lookup can place, deletes and re-inserts of the same key.
func (c *indexerCatalog) step() {
	switch n := c.rnd.IntN(100); {
	case n < 15:
		if id, _, ok := c.pick("programs"); ok {
			c.update("programs", id, map[string]any{"title": fmt.Sprintf("Retitled %d", c.rnd.IntN(1e6)), "duration_s": c.rnd.IntN(7200)})
		}
	case n < 22:
		if id, _, ok := c.pick("programs"); ok {
			c.update("programs", id, map[string]any{"channel_id": c.nullableChannel()})
		}
	case n < 25:
		if id, _, ok := c.pick("programs"); ok {
			c.update("programs", id, map[string]any{"internal_note": fmt.Sprintf("note %d", c.rnd.IntN(1e6))})
		}
	case n < 30: // delete a program and its children, explicitly (no cascades)
		if id, _, ok := c.pick("programs"); ok {
			for eid, e := range c.rows["episodes"] {
				if e["program_id"] == id {
					c.delete("episodes", eid)
				}
			}
			for l := range c.links {
				if l[0] == id {
					c.link(l[0], l[1], false)
				}
			}
			c.delete("programs", id)
			c.deleted = append(c.deleted, id)
		}
	case n < 35: // the same key again
		if len(c.deleted) > 0 {
			i := c.rnd.IntN(len(c.deleted))
			id := c.deleted[i]
			c.deleted = slices.Delete(c.deleted, i, i+1)
			c.insert("programs", c.program(id))
		} else {
			c.insert("programs", c.program(c.id()))
		}
	case n < 50:
		if p, _, ok := c.pick("programs"); ok {
			id := c.id()
			c.insert("episodes", map[string]any{"id": id, "program_id": p, "number": c.rnd.IntN(50), "title": fmt.Sprintf("Episode %d", id)})
		}
	case n < 62: // child moves from parent A to parent B
		if id, _, ok := c.pick("episodes"); ok {
			if p, _, ok := c.pick("programs"); ok {
				c.update("episodes", id, map[string]any{"program_id": p, "number": c.rnd.IntN(50)})
			}
		}
	case n < 68:
		if id, _, ok := c.pick("episodes"); ok {
			c.delete("episodes", id)
		}
	case n < 82:
		p, _, ok1 := c.pick("programs")
		t, _, ok2 := c.pick("tags")
		if ok1 && ok2 {
			c.link(p, t, !c.links[[2]int{p, t}])
		}
	case n < 88:
		if id, _, ok := c.pick("tags"); ok {
			c.update("tags", id, map[string]any{"name": fmt.Sprintf("tag-%d-%d", id, c.rnd.IntN(1e6))})
		}
	case n < 94:
		if id, _, ok := c.pick("channels"); ok {
			c.update("channels", id, map[string]any{"name": fmt.Sprintf("Channel %d/%d", id, c.rnd.IntN(1e6))})
		}
	case n < 97:
		if id, _, ok := c.pick("channels"); ok {
			var nw any
			if n, _, ok := c.pick("networks"); ok {
				nw = n
			}
			c.update("channels", id, map[string]any{"network_id": nw})
		}
	default:
		if id, _, ok := c.pick("networks"); ok {
			c.update("networks", id, map[string]any{"name": fmt.Sprintf("Network %d/%d", id, c.rnd.IntN(1e6))})
		}
	}
}

func join(cols []string) string {
	s := ""
	for i, c := range cols {
		if i > 0 {
			s += ","
		}
		s += c
	}
	return s
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

// expectedDocs builds every program document from MariaDB with plain per-row queries,
// independently of the indexer's batched reads: what every cluster must hold.
func (r *indexerRig) expectedDocs() map[string]map[string]any {
	r.t.Helper()
	db := r.app
	q := func(query string, args ...any) *sql.Rows {
		rows, err := db.Query(query, args...)
		if err != nil {
			r.t.Fatalf("%s: %v", query, err)
		}
		return rows
	}
	out := map[string]map[string]any{}
	rows := q("SELECT id, title, channel_id, duration_s, rating, code, updated_at FROM programs")
	type prog struct {
		id, dur   int64
		title     string
		ch        sql.NullInt64
		rating    sql.NullString
		code      string
		updatedAt time.Time
	}
	var progs []prog
	for rows.Next() {
		var p prog
		must(r.t, rows.Scan(&p.id, &p.title, &p.ch, &p.dur, &p.rating, &p.code, &p.updatedAt))
		progs = append(progs, p)
	}
	rows.Close()
	for _, p := range progs {
		doc := map[string]any{"id": p.id, "title": p.title, "duration_s": p.dur, "code": p.code,
			"updated_at": p.updatedAt.Format(time.DateTime), "channel_id": nil, "rating": nil, "channel": nil}
		if p.rating.Valid {
			doc["rating"] = p.rating.String
		}
		if p.ch.Valid {
			doc["channel_id"] = p.ch.Int64
			var name string
			var nw sql.NullInt64
			if err := db.QueryRow("SELECT name, network_id FROM channels WHERE id = ?", p.ch.Int64).Scan(&name, &nw); err == nil {
				ch := map[string]any{"id": p.ch.Int64, "name": name, "network": nil}
				if nw.Valid {
					var nname string
					if db.QueryRow("SELECT name FROM networks WHERE id = ?", nw.Int64).Scan(&nname) == nil {
						ch["network"] = map[string]any{"id": nw.Int64, "name": nname}
					}
				}
				doc["channel"] = ch
			}
		}
		eps := []any{}
		er := q("SELECT id, number, title FROM episodes WHERE program_id = ? ORDER BY id", p.id)
		for er.Next() {
			var id, num int64
			var title string
			must(r.t, er.Scan(&id, &num, &title))
			eps = append(eps, map[string]any{"id": id, "number": num, "episode_title": title})
		}
		er.Close()
		doc["episodes"] = eps
		tags := []any{}
		tr := q("SELECT t.id, t.name FROM program_tags pt JOIN tags t ON t.id = pt.tag_id WHERE pt.program_id = ? ORDER BY t.id", p.id)
		for tr.Next() {
			var id int64
			var name string
			must(r.t, tr.Scan(&id, &name))
			tags = append(tags, map[string]any{"id": id, "name": name})
		}
		tr.Close()
		doc["tags"] = tags
		// Through JSON, so numbers compare as the search results decode them.
		b, _ := json.Marshal(doc)
		var norm map[string]any
		must(r.t, json.Unmarshal(b, &norm))
		out[strconv.FormatInt(p.id, 10)] = norm
	}
	return out
}

// converged checks every cluster against MySQL and that the slaves carry the master's versions.
func (r *indexerRig) converged(clusters ...string) error {
	return sameEverywhere("", clusters, r.expectedDocs(), r.docs)
}

// sameEverywhere checks the documents each cluster holds (read) against want, and that every
// cluster after the first (the master) carries the first one's versions. what names the
// documents in errors ("" for the rig's index).
func sameEverywhere(what string, clusters []string, want map[string]map[string]any,
	read func(cluster string) (map[string]map[string]any, error)) error {
	var master map[string]map[string]any
	for _, c := range clusters {
		got, err := read(c)
		if err != nil {
			return err
		}
		label := strings.TrimSpace(c + " " + what)
		if err := diffDocs(label, got, want); err != nil {
			return err
		}
		if master == nil {
			master = got
			continue
		}
		for id, d := range got {
			if d["wye_version"] != master[id]["wye_version"] {
				return fmt.Errorf("%s doc %s: wye_version %v, master has %v", label, id, d["wye_version"], master[id]["wye_version"])
			}
		}
	}
	return nil
}

// seedBulk creates a catalog of the given sizes with multi-row INSERTs and publishes no
// events: the benchmark loads tens of thousands of rows before it starts its clock, and the
// row-by-row seed (one statement and one pick over every key per row) would take minutes.
// Rows have the shapes seed gives them; c.rows holds them as seed leaves them.
func (c *indexerCatalog) seedBulk(networks, channels, programs, episodes, tags int) {
	c.r.t.Helper()
	ids := map[string][]int{}
	add := func(table string, row map[string]any) {
		id := row["id"].(int)
		c.rows[table][id] = row
		ids[table] = append(ids[table], id)
	}
	pickID := func(table string) any {
		if l := ids[table]; len(l) > 0 {
			return l[c.rnd.IntN(len(l))]
		}
		return nil
	}
	for range networks {
		id := c.id()
		add("networks", map[string]any{"id": id, "name": fmt.Sprintf("Network %d", id)})
	}
	for range channels {
		id := c.id()
		add("channels", map[string]any{"id": id, "name": fmt.Sprintf("Channel %d", id), "network_id": pickID("networks")})
	}
	for range tags {
		id := c.id()
		add("tags", map[string]any{"id": id, "name": fmt.Sprintf("tag-%d", id)})
	}
	for range programs {
		p := c.program(c.id())
		if c.rnd.IntN(10) > 0 {
			p["channel_id"] = pickID("channels")
		} else {
			p["channel_id"] = nil
		}
		add("programs", p)
	}
	for range episodes {
		id := c.id()
		add("episodes", map[string]any{"id": id, "program_id": pickID("programs"), "number": c.rnd.IntN(50), "title": fmt.Sprintf("Episode %d", id)})
	}
	var links []map[string]any
	for range programs * 2 {
		p, t := pickID("programs").(int), pickID("tags").(int)
		if !c.links[[2]int{p, t}] {
			c.links[[2]int{p, t}] = true
			links = append(links, map[string]any{"program_id": p, "tag_id": t})
		}
	}
	for _, table := range []string{"networks", "channels", "tags", "programs", "episodes"} {
		var rows []map[string]any
		for _, id := range ids[table] {
			rows = append(rows, c.rows[table][id])
		}
		c.insertMany(table, rows)
		c.counts[table+".insert"] += len(rows)
	}
	c.insertMany("program_tags", links)
	c.counts["program_tags"] += len(links)
}

// insertMany inserts rows (all with the same columns) 500 per statement.
func (c *indexerCatalog) insertMany(table string, rows []map[string]any) {
	c.r.t.Helper()
	for len(rows) > 0 {
		chunk := rows[:min(500, len(rows))]
		rows = rows[len(chunk):]
		cols := slices.Sorted(maps.Keys(chunk[0]))
		one := "(?" + repeat(",?", len(cols)-1) + ")"
		q := fmt.Sprintf("INSERT INTO %s (%s) VALUES %s%s", table, join(cols), one, repeat(","+one, len(chunk)-1))
		args := make([]any, 0, len(chunk)*len(cols))
		for _, r := range chunk {
			for _, k := range cols {
				args = append(args, r[k])
			}
		}
		c.exec(q, args...)
	}
}
