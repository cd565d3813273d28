-- The digest of what each succeeded attempt wrote (its part files and a
-- map's output file, XXH3-128 combined in name order): what `quern replay`
-- reproduces. Empty for other attempts and those recorded before.
ALTER TABLE attempts ADD COLUMN output_digest TEXT NOT NULL DEFAULT '';
