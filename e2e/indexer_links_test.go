package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/indexer"
	indexersql "github.com/wyehq/wye/indexer/sql"
)

// TestIndexerFlagsLinkColumnsMySQLComparesByCollation prevents a silent mismatch: wye joins
// an entity's rows by comparing key values byte for byte, MariaDB by collation, so a string
// link column with a case-insensitive collation is reported (and binary or integer ones are
// not), and a link column the source lacks is a configuration error, not a failing batch.
func TestIndexerFlagsLinkColumnsMySQLComparesByCollation(t *testing.T) {
	app := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	db := fmt.Sprintf("wye_links_%d", time.Now().UnixNano()%1_000_000_000)
	t.Cleanup(func() { app.Exec("DROP DATABASE IF EXISTS " + db) })
	for _, q := range []string{
		"CREATE DATABASE " + db,
		"CREATE TABLE " + db + ".owners (code VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci PRIMARY KEY, name TEXT)",
		"CREATE TABLE " + db + ".items (id BIGINT PRIMARY KEY, owner_code VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, title TEXT)",
	} {
		if _, err := app.Exec(q); err != nil {
			t.Fatalf("prepare the schema as %s: %v", mysqlAppUser, err)
		}
	}
	entity := func(ownerKey string) config.Entity {
		return config.Entity{Name: "item", Index: "items", Root: config.Root{Table: db + ".items", Key: "id"},
			Relations: []config.Relation{{Name: "owner", Table: db + ".owners", Key: config.KeyColumns{ownerKey}, From: "owner_code"}}}
	}
	src, err := indexersql.Open(mysqlDriverConfig(mysqlSrcUser, mysqlSrcPass, ""), 1)
	must(t, err)
	defer src.Close()
	ctx := context.Background()

	check := func(key string) (faults, links []string) {
		model, err := indexer.NewModel(config.EntityDefs([]config.Entity{entity(key)}))
		must(t, err)
		found, err := src.Check(ctx, model.Needs())
		must(t, err)
		for _, f := range found {
			switch {
			case !f.Warning:
				faults = append(faults, f.Error())
			case strings.Contains(f.Msg, "collation"):
				links = append(links, f.Error())
			}
		}
		return faults, links
	}
	faults, links := check("code")
	if len(faults) != 0 || len(links) != 1 || !strings.HasPrefix(links[0], `entities[0].relations[0].key (item.owner): "code"`) ||
		!strings.Contains(links[0], "utf8mb4_general_ci") {
		t.Errorf("faults %q, link warnings %q: want only entities[0].relations[0].key (%s.owners.code, utf8mb4_general_ci)", faults, links, db)
	}
	faults, _ = check("no_such_column")
	if len(faults) != 1 || !strings.HasPrefix(faults[0], `entities[0].relations[0].key (item.owner): "no_such_column": no such column`) {
		t.Errorf("missing link column: faults %q, want entities[0].relations[0].key", faults)
	}
}
