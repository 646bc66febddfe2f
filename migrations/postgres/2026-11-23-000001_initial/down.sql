DROP TABLE settings;
DROP TABLE audit_events;
DROP TABLE certificates;
DROP TABLE tokens;
DROP TABLE host_mappings;
DROP TABLE hosts;
DROP TABLE users;
