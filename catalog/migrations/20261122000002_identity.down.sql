DROP TABLE secrets;
DROP TRIGGER audit_log_no_delete;
DROP TRIGGER audit_log_no_update;
DROP TABLE audit_log;
DROP TABLE dataset_grants;
DROP TABLE api_keys;
DROP TABLE sessions;
DROP TABLE users;
