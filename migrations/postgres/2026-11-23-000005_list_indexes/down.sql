DROP INDEX tokens_lower_name;
