"""Models of recbole_text, one per file under ``sequential_recommender/`` (RecBole's layout)."""
