DROP INDEX IF EXISTS jobs_by_created;
DROP INDEX IF EXISTS jobs_by_status;
DROP TABLE IF EXISTS jobs;
DROP INDEX IF EXISTS datasets_live_name;
DROP TABLE IF EXISTS datasets;
