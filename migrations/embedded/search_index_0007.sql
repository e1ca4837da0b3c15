-- Free text is matched on words folded in Rust (crates/search-index/src/words.rs),
-- the same words the Elasticsearch index keeps in `descriptionWords`, instead of
-- the descriptions as FTS5's unicode61 tokenizer split and folded them (which
-- differed from Elasticsearch's analyzer on some scripts). Each row holds its
-- description's words joined by spaces; the `ascii` tokenizer splits them there
-- only (a word holds no ASCII character but letters and digits) and folds
-- nothing more. Contentless, without positions: only which rows hold a word is
-- asked. The rowid is the transaction's position.
CREATE VIRTUAL TABLE search_description_words USING fts5 (
    words,
    content = '',
    detail = none,
    columnsize = 0,
    tokenize = 'ascii'
);

-- The rows written before this table get their words when the index is opened
-- (`embedded::fill_description_words`), from the position after `after_position`
-- on; the row goes when they all have them.
CREATE TABLE search_description_words_fill (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    after_position INTEGER NOT NULL
);
INSERT INTO search_description_words_fill (id, after_position)
SELECT 1, -1 WHERE EXISTS (SELECT 1 FROM search_transactions WHERE description IS NOT NULL);

DROP TABLE search_descriptions;
