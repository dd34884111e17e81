-- Does partitioning meter_readings by time pay on PostgreSQL? (issue 8)
-- The same 4.32 M readings (100 meters, one a minute for 30 days, inserted in
-- time order, 1000 rows per INSERT … ON CONFLICT DO NOTHING) into a plain
-- table and into one with 30 daily range partitions, then the rollup
-- neighbour query and a 3-day retention on both. Run on an empty database:
--   psql -X -d DB -f bench/pg_partitioning.sql
-- Result (2026-11-27, PostgreSQL 15, this 2-core machine; docs/scale-out.md):
--   insert: plain 40.4 s, partitioned 40.8 s (no difference);
--   neighbour query: plain 0.13 ms + 0.6 ms planning, partitioned 0.39 ms + 0.9 ms;
--   retention of 3 days (432 000 rows): DELETE 762 ms, DROP of 3 partitions 28 ms.
-- So only retention gains, and it already runs in the background in batches:
-- meterhub does not partition (no partitions to pre-create, no reading refused
-- for falling outside them).
\timing on
CREATE TABLE plain (meter_id bigint, ts bigint, v double precision, i double precision, p double precision, e double precision, f double precision, pf double precision, batch bigint, PRIMARY KEY (meter_id, ts));
CREATE INDEX ON plain USING brin(batch);
CREATE TABLE part (meter_id bigint, ts bigint, v double precision, i double precision, p double precision, e double precision, f double precision, pf double precision, batch bigint, PRIMARY KEY (meter_id, ts)) PARTITION BY RANGE (ts);
CREATE INDEX ON part USING brin(batch);
-- 30 daily partitions (ms)
DO $$ BEGIN FOR d IN 0..29 LOOP EXECUTE format('CREATE TABLE part_%s PARTITION OF part FOR VALUES FROM (%s) TO (%s)', d, d::bigint*86400000, (d+1)::bigint*86400000); END LOOP; END $$;
-- 200 meters, 1 reading / 10 s over 30 days ≈ 259200 per meter... too many; use 100 meters x 30 days at 60 s = 4.32M rows, inserted in time order, 1000 rows per statement
DO $$ DECLARE t bigint; BEGIN FOR k IN 0..4319 LOOP
  INSERT INTO plain SELECT m, k::bigint*600000 + (s*60000), 230, 1, 230, k, 50, 0.9, k FROM generate_series(0,99) m, generate_series(0,9) s ON CONFLICT DO NOTHING;
END LOOP; END $$;
DO $$ DECLARE t bigint; BEGIN FOR k IN 0..4319 LOOP
  INSERT INTO part SELECT m, k::bigint*600000 + (s*60000), 230, 1, 230, k, 50, 0.9, k FROM generate_series(0,99) m, generate_series(0,9) s ON CONFLICT DO NOTHING;
END LOOP; END $$;
SELECT pg_size_pretty(pg_total_relation_size('plain')) plain_size;
-- neighbour query like rollup maintenance, for a mid point
EXPLAIN ANALYZE SELECT ts FROM plain WHERE meter_id = 42 AND ts < 1296000000 ORDER BY ts DESC LIMIT 4;
EXPLAIN ANALYZE SELECT ts FROM part WHERE meter_id = 42 AND ts < 1296000000 ORDER BY ts DESC LIMIT 4;
-- retention: the oldest 3 days
DELETE FROM plain WHERE ts < 3*86400000::bigint;
DROP TABLE part_0, part_1, part_2;
