-- Reverse of 0007 (the grants go with the objects).
DROP FUNCTION llmbase.clean_expired_cache(integer);
DROP TABLE llmbase.cache_entries;
