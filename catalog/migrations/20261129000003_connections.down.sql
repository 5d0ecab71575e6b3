DROP TABLE field_mappings;
DROP TABLE sync_state;
DROP INDEX schema_history_subject;
DROP TABLE schema_history;
DROP TABLE connections;
