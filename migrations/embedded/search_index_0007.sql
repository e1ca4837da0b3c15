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

-- The rows get their words again whenever the rules that make them change
-- (`words::WORDS_VERSION`; `embedded::fill_description_words`, when the index
-- is opened): `version` is the version the words were made by, and while a
-- fill row is there, the rows after `after_position` are still to be given
-- theirs. Both start empty: the first open fills every row it finds.
CREATE TABLE search_description_words_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
CREATE TABLE search_description_words_fill (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    after_position INTEGER NOT NULL
);

DROP TABLE search_descriptions;
