-- The sample media catalog (docs/indexer.md). Plain InnoDB tables with no foreign-key
-- cascades: a cascaded delete is not written to the binlog as row events, so wye would not
-- see it. The application deletes children explicitly.
CREATE TABLE networks (
  id   INT          NOT NULL PRIMARY KEY,
  name VARCHAR(100) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE channels (
  id         INT          NOT NULL PRIMARY KEY,
  name       VARCHAR(100) NOT NULL,
  network_id INT          NULL,
  KEY (network_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE programs (
  id         INT           NOT NULL PRIMARY KEY,
  title      VARCHAR(200)  NOT NULL,
  channel_id INT           NULL,
  duration_s INT           NOT NULL DEFAULT 0,
  rating     DECIMAL(3,1)  NULL,
  code       VARCHAR(16)   NOT NULL,
  updated_at DATETIME      NOT NULL,
  internal_note VARCHAR(200) NULL COMMENT 'not indexed: changing it re-indexes nothing',
  KEY (channel_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE episodes (
  id         INT          NOT NULL PRIMARY KEY,
  program_id INT          NOT NULL,
  number     INT          NOT NULL,
  title      VARCHAR(200) NOT NULL,
  KEY (program_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE tags (
  id   INT         NOT NULL PRIMARY KEY,
  name VARCHAR(64) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE program_tags (
  program_id INT NOT NULL,
  tag_id     INT NOT NULL,
  PRIMARY KEY (program_id, tag_id),
  KEY (tag_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
