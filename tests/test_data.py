import pytest

from course import data


def test_movie_sentiment_splits_are_balanced_disjoint_and_repeatable():
    splits = data.load_sentiment("movies", seed=0)
    sizes = {name: len(split) for name, split in splits.items()}
    assert sum(sizes.values()) == 10_568  # 10,605 sentences less those rated exactly 0
    assert sizes["validation"] == sizes["test"] == pytest.approx(sum(sizes.values()) / 10, abs=1)
    texts = {name: set(split["text"]) for name, split in splits.items()}
    assert not texts["train"] & texts["test"] and not texts["validation"] & texts["test"]
    positive_share = sum(splits["train"]["label"]) / sizes["train"]
    assert 0.45 < positive_share < 0.55
    assert all((r > 0) == bool(l) for r, l in zip(splits["train"]["rating"], splits["train"]["label"]))
    assert splits["test"]["text"][:5] == data.load_sentiment("movies", seed=0)["test"]["text"][:5]


@pytest.mark.parametrize("domain", ["products", "tweets", "editorials"])
def test_other_sentiment_domains_load(domain):
    assert len(data.load_sentiment(domain)["train"]) > 2000


def test_unknown_domain_lists_the_known_ones():
    with pytest.raises(ValueError, match="movies, products, tweets, editorials"):
        data.load_sentiment("poems")


def test_individual_ratings_average_to_the_published_mean():
    ratings = data.load_sentiment_ratings("movies")
    assert len(ratings) == 10_605
    for row in ratings.select(range(50)):
        assert sum(row["ratings"]) / len(row["ratings"]) == pytest.approx(row["mean"], abs=1e-6)
        assert all(-4 <= r <= 4 for r in row["ratings"])


def test_a_missing_vader_cache_says_how_to_fetch_it(monkeypatch, tmp_path):
    monkeypatch.setenv("FTKIT_CACHE", str(tmp_path))
    with pytest.raises(data.PackagedAssetMissing, match="course.prepare"):
        data.load_sentiment("movies", source="offline")


def test_chitchat_and_chatterbot():
    chats = data.load_chitchat()
    assert len(chats) == 7_168
    assert len(chats[0]["turns"]) == len(chats[0]["speakers"]) and chats[0]["speakers"][0] == "A"
    qa = data.load_chatterbot_qa()
    assert len(qa) > 1_500 and all(qa[i]["question"] and qa[i]["answer"] for i in range(20))


def test_python_docs_hold_out_whole_topics():
    docs = data.load_python_docs(seed=0)
    assert not set(docs["train"]["topic"]) & set(docs["test"]["topic"])
    assert len(docs["train"]) + len(docs["test"]) == 79
