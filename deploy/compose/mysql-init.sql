-- Accounts of the compose stack: the same users and dev-only passwords as the local stack
-- (e2e/stack/stack.sh). Runs once, when MySQL initializes its data directory.
CREATE USER IF NOT EXISTS 'wye_source'@'%' IDENTIFIED BY 'wye-source';
GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'wye_source'@'%';
CREATE DATABASE IF NOT EXISTS wye;
CREATE USER IF NOT EXISTS 'wye'@'%' IDENTIFIED BY 'wye-control';
GRANT ALL PRIVILEGES ON wye.* TO 'wye'@'%';
