-- Catalog constraints and domain-table defaults.
\set VERBOSITY terse

INSERT INTO streamrec.sources(name, topic, target) VALUES ('clicks_in', 'flink.click.streams', 'streamrec.clicks');
SELECT name, topic, target, format, brokers, options, paused, owner::regrole FROM streamrec.sources;

-- Constraints refuse what a worker could not run.
INSERT INTO streamrec.sources(name, topic, target, format) VALUES ('bad_format', 't', 'streamrec.clicks', 'xml');
INSERT INTO streamrec.sources(name, topic, target) VALUES ('has space', 't', 'streamrec.clicks');
INSERT INTO streamrec.sources(name, topic, target, options) VALUES ('bad_opts', 't', 'streamrec.clicks', '[]');
INSERT INTO streamrec.sources(name, topic, target) VALUES ('no_table', 't', 'streamrec.nope');
INSERT INTO streamrec.sources(name, topic, target) VALUES ('clicks_in', 't', 'streamrec.clicks');

-- Offsets belong to a source and go with it.
INSERT INTO streamrec.source_offsets VALUES ('clicks_in', 0, 42), ('clicks_in', 1, 7);
INSERT INTO streamrec.source_offsets VALUES ('ghost', 0, 1);
INSERT INTO streamrec.source_offsets VALUES ('clicks_in', 2, -1);
DELETE FROM streamrec.sources WHERE name = 'clicks_in';
SELECT count(*) FROM streamrec.source_offsets;

-- Dead letters keep raw bytes.
INSERT INTO streamrec.dead_letters(source, topic, partition, "offset", key, payload, error)
VALUES ('clicks_in', 'flink.click.streams', 3, 17, 'user-1', '\x00ff0a'::bytea, 'bad csv');
SELECT id, source, partition, "offset", key, payload, error, received_at IS NOT NULL AS has_time FROM streamrec.dead_letters;

INSERT INTO streamrec.sinks(name, relation, topic) VALUES ('recs_out', 'streamrec.inventory', 'flink.recommended.products');
SELECT name, relation, topic, format FROM streamrec.sinks;
INSERT INTO streamrec.sinks(name, relation, topic) VALUES ('empty_topic', 'streamrec.inventory', '');

-- Domain table defaults.
INSERT INTO streamrec.clicks(user_id, product_id) VALUES ('user-27', '140');
SELECT user_id, product_id, event_type, event_time IS NOT NULL AS has_time FROM streamrec.clicks;
INSERT INTO streamrec.clicks(product_id) VALUES ('140');
INSERT INTO streamrec.inventory(product_id, category) VALUES ('140', 'toys');
SELECT product_id, category, stock, rating FROM streamrec.inventory;
INSERT INTO streamrec.inventory(product_id) VALUES ('140');
INSERT INTO streamrec.purchases(user_id, product_id) VALUES ('user-27', '140');
SELECT quantity FROM streamrec.purchases;
INSERT INTO streamrec.checkouts(checkout_id, user_id, product_id) VALUES ('c1', 'user-27', '140');
INSERT INTO streamrec.item_transactions(item_id, quantity) VALUES ('140', -2);
SELECT item_id, quantity, ts IS NOT NULL AS has_ts FROM streamrec.item_transactions;
INSERT INTO streamrec.ratings(user_id, stars) VALUES ('user-27', NULL);

-- The product_id,category,stock,rating inventory CSV loads as the README shows.
COPY streamrec.inventory(product_id, category, stock, rating) FROM stdin CSV;
0,accessories,67,6
1,appliances,21,5
2,health&beauty,56,6
\.
SELECT product_id, category, stock, rating FROM streamrec.inventory ORDER BY product_id;

DROP EXTENSION pg_streamrec;
