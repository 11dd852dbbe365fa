package indexer

import (
	"fmt"
	"testing"
)

// TestLinkColumnsNameEveryJoinOfTheEntity prevents a link column from escaping the collation
// check: every key and foreign key the indexer matches itself is listed with its config path.
func TestLinkColumnsNameEveryJoinOfTheEntity(t *testing.T) {
	var got []string
	for _, l := range catalogModel(t).LinkColumns() {
		got = append(got, fmt.Sprintf("%s=%s.%s", l.Path, l.Table, l.Column))
	}
	sameStrings(t, "link columns", got,
		"program.key=cat.programs.id",
		"program.channel.from=cat.programs.channel_id", "program.channel.key=cat.channels.id",
		"program.channel.network.from=cat.channels.network_id", "program.channel.network.key=cat.networks.id",
		"program.episodes.parent_key=cat.episodes.program_id", "program.episodes.key=cat.episodes.id",
		"program.episodes.credits.parent_key=cat.credits.episode_id", "program.episodes.credits.key=cat.credits.id",
		"program.tags.through.parent_key=cat.program_tags.program_id", "program.tags.through.key=cat.program_tags.tag_id",
		"program.tags.key=cat.tags.id")
}
