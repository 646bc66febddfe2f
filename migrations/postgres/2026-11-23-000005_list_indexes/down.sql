DROP INDEX certificates_not_after;
DROP INDEX tokens_lower_name;
