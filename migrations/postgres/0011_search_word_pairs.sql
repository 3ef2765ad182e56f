-- What an index of adjacent words needs (LECTOR_SEARCH_PHRASE_INDEX; the index itself,
-- `pages_search_pairs`, is made or dropped at start-up by the setting, since it costs time
-- on every page stored). With it, a phrase of common words that rarely stand together ("new
-- york" in a library where both words are on a sixth of the pages) is found from the pages
-- holding its pairs, not by checking the phrase on every page holding its words: the word
-- index keeps no positions, so Postgres re-reads each such row. Elasticsearch's
-- `index_phrases` is the same idea, and opt-in for the same reason.
--
-- Each pair of adjacent lexemes (taken from the page's own tsvector, so stemming, stop words
-- and the position cap are the phrase operator's own) is hashed into one of 16,384 buckets.
-- A bucket in common only makes a page a candidate: the phrase itself is still checked on
-- each one, so a collision costs a check, never a wrong answer. More buckets let fewer other
-- pages through but cost more per page stored (GIN inserts into more, sparser lists):
-- inserting 5,000 pages into 100,000 took 5 s without the index, 10 s with 4,096 buckets,
-- 15 s with 16,384 and 22 s with 262,144. At 200,000 pages a phrase on 306 of them read
-- 10,579 candidates with 4,096 buckets (64 ms) and 3,827 with 16,384 (16 ms).
create function search_word_pairs(words tsvector) returns int4[]
    language sql immutable strict parallel safe
    -- Costly per row (a few hundred pairs): the planner should use the index, never
    -- compute it over rows it walks.
    cost 1000
return (
    with placed as materialized (
        select lexeme, unnest(positions) as position from unnest(words)
    )
    select coalesce(array_agg(hashtext(first.lexeme || ' ' || next.lexeme) & 16383), '{}')
    from placed first join placed next on next.position = first.position + 1
);

-- The pairs a page must hold to contain every one of `phrases` (each a phrase's words, as the
-- search asked for them): the same buckets, from the phrases parsed as page text is.
create function search_phrase_pairs(phrases text[]) returns int4[]
    language sql immutable strict parallel safe
return (
    select coalesce(array_agg(distinct pair), '{}')
    from unnest(phrases) as phrase,
        unnest(search_word_pairs(to_tsvector('english'::regconfig, phrase))) as pair
);
