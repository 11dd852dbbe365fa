package e2e

import (
	"context"
	"errors"
	"fmt"
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

	model, err := indexer.NewModel(config.EntityDefs([]config.Entity{entity("code")}))
	must(t, err)
	loose, err := src.LooseLinks(ctx, model.LinkColumns())
	must(t, err)
	if len(loose) != 1 || loose[0].Path != "item.owner.key" || loose[0].Column != "code" || loose[0].Collation != "utf8mb4_general_ci" {
		t.Errorf("loose links = %+v, want only item.owner.key (%s.owners.code, utf8mb4_general_ci)", loose, db)
	}

	model, err = indexer.NewModel(config.EntityDefs([]config.Entity{entity("no_such_column")}))
	must(t, err)
	if _, err := src.LooseLinks(ctx, model.LinkColumns()); !errors.Is(err, indexersql.ErrNoColumn) {
		t.Errorf("missing link column: err = %v, want ErrNoColumn", err)
	}
}
