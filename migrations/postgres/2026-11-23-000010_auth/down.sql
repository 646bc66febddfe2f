DROP INDEX login_attempts_username_address;
DROP TABLE ended_sessions;
