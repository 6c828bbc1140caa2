"""The tiny model, tokenizer and synthetic data every corpus run trains on (all built offline).

A word-level tokenizer over a 40-word vocabulary and a 2-layer Llama (hidden 48). The "base" model is
the random Llama pre-trained for a few hundred steps on grammatical sentences ending in </s>, so it
starts every corpus run the way a real post-training run starts: from a model that already writes
short sentences and stops. Data are sentences from a small grammar; preference pairs differ in the
sentiment of one adjective (chosen: a kind word, rejected: an unkind one), which a tiny model can learn.
"""

from __future__ import annotations

import random
from pathlib import Path

DETS = ["the", "a"]
NOUNS = ["cat", "dog", "bird", "fish", "man", "girl"]
VERBS = ["sat", "ran", "saw", "ate", "liked"]
PREPS = ["on", "under", "near", "by"]
PLACES = ["mat", "log", "tree", "box", "bed"]
GOOD = ["good", "nice", "kind", "happy"]
BAD = ["bad", "rude", "sad", "angry"]
OTHER = ["yes", "no", "very", "and", "big", "small"]
WORDS = DETS + NOUNS + VERBS + PREPS + PLACES + GOOD + BAD + OTHER
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>"]


def build_tokenizer():
    import tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIAL + WORDS)}
    word_level = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=word_level, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )


def build_config(vocab_size: int):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        tie_word_embeddings=False,
    )


# ---- sentences ---------------------------------------------------------------------------------


def sentence(rng: random.Random, adjective: str | None = None) -> list[str]:
    """'the cat sat on a good mat': subject, verb, preposition, object with an optional adjective."""
    adjective = adjective if adjective is not None else rng.choice(GOOD + BAD + ["big", "small", ""])
    obj = [rng.choice(DETS)] + ([adjective] if adjective else []) + [rng.choice(PLACES)]
    return [rng.choice(DETS), rng.choice(NOUNS), rng.choice(VERBS), rng.choice(PREPS)] + obj


def random_words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(n)]


def pretraining_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(sentence(rng)) for _ in range(n)]


def preference_pairs(n: int, seed: int, flipped: float = 0.2) -> dict[str, list[str]]:
    """Prompt 'the cat', chosen ' sat on a kind mat', rejected ' sat on a rude mat' (same frame).

    A share `flipped` of the pairs is labelled the other way round, as annotators disagree on real
    preference data: accuracy tops out near 1 - flipped unless the model memorises the pairs.
    """
    rng = random.Random(seed)
    rows: dict[str, list[str]] = {"prompt": [], "chosen": [], "rejected": []}
    for _ in range(n):
        words = sentence(rng, adjective="X")
        cut = 2
        good, bad = rng.choice(GOOD), rng.choice(BAD)
        if rng.random() < flipped:
            good, bad = bad, good
        rows["prompt"].append(" ".join(words[:cut]))
        rows["chosen"].append(" " + " ".join(w if w != "X" else good for w in words[cut:]))
        rows["rejected"].append(" " + " ".join(w if w != "X" else bad for w in words[cut:]))
    return rows


def noise_pairs(n: int, seed: int) -> dict[str, list[str]]:
    """Pairs with nothing to learn: chosen and rejected are unrelated random word strings."""
    rng = random.Random(seed)
    rows: dict[str, list[str]] = {"prompt": [], "chosen": [], "rejected": []}
    for _ in range(n):
        rows["prompt"].append(" ".join(random_words(rng, 2)))
        rows["chosen"].append(" " + " ".join(random_words(rng, 5)))
        rows["rejected"].append(" " + " ".join(random_words(rng, 5)))
    return rows


def unpaired(n: int, seed: int) -> dict[str, list]:
    """KTO's format: prompt, completion, label (True = desirable: a kind adjective)."""
    rng = random.Random(seed)
    rows: dict[str, list] = {"prompt": [], "completion": [], "label": []}
    for i in range(n):
        desirable = i % 2 == 0
        words = sentence(rng, adjective=rng.choice(GOOD if desirable else BAD))
        rows["prompt"].append(" ".join(words[:2]))
        rows["completion"].append(" " + " ".join(words[2:]))
        rows["label"].append(desirable)
    return rows


def sft_texts(n: int, seed: int) -> dict[str, list[str]]:
    """A format the base model has not seen: two clauses joined by 'and', the second repeating the
    first one's subject and verb ('the cat sat on a mat and the cat sat by the box')."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        first, second = sentence(rng), sentence(rng)
        texts.append(" ".join(first + ["and"] + first[:3] + second[3:]))
    return {"text": texts}


def sft_with_junk(n: int, seed: int) -> dict[str, list[str]]:
    """The SFT texts with 1% junk rows (40 random words each): a few batches spike the loss."""
    rows = sft_texts(n, seed)
    rng = random.Random(seed + 1)
    for index in rng.sample(range(n), max(1, n // 100)):
        rows["text"][index] = " ".join(random_words(rng, 40))
    return rows


def sft_noise(n: int, seed: int) -> dict[str, list[str]]:
    """Random word strings: memorisable, not generalisable (eval loss rises as train loss falls)."""
    rng = random.Random(seed)
    return {"text": [" ".join(random_words(rng, 8)) for _ in range(n)]}


def prompts(n: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    return {"prompt": [" ".join(sentence(rng)[:2]) for _ in range(n)]}


DATASETS = {
    "pairs": preference_pairs,
    "noise_pairs": noise_pairs,
    "unpaired": unpaired,
    "sft": sft_texts,
    "sft_noise": sft_noise,
    "sft_with_junk": sft_with_junk,
    "prompts": prompts,
}


# ---- reward functions for the online trainers --------------------------------------------------


def kind_words(completions, **kwargs):
    """Share of the completion's words that are kind adjectives, capped: partial credit in [0, 1]."""
    out = []
    for completion in completions:
        words = completion.split()
        out.append(min(1.0, 3.0 * sum(w in GOOD for w in words) / max(len(words), 1)))
    return out


def mentions_kind(completions, **kwargs):
    """1 if the completion has a kind adjective, 0 if an unkind one, 0.5 otherwise."""
    out = []
    for completion in completions:
        words = set(completion.split())
        out.append(1.0 if words & set(GOOD) else 0.0 if words & set(BAD) else 0.5)
    return out


def constant(completions, **kwargs):
    """The same reward for everything: a broken reward function (or a verifier that always passes)."""
    return [1.0] * len(completions)


def exact_answer(completions, **kwargs):
    """1 only for one exact 6-word answer the model essentially never writes: a sparse, unsolvable task."""
    return [1.0 if completion.strip() == "fish fish fish fish fish fish" else 0.0 for completion in completions]


def yes_count(completions, **kwargs):
    """Counts the word 'yes': a reward with a loophole (say 'yes' over and over)."""
    return [float(completion.split().count("yes")) for completion in completions]


def happy_count(completions, **kwargs):
    """Counts the word 'happy': a reward with a loophole (say 'happy' over and over)."""
    return [float(completion.split().count("happy")) for completion in completions]


def length_reward(completions, **kwargs):
    """Longer is better: pushes completions into max_completion_length."""
    return [float(len(completion.split())) for completion in completions]


REWARDS = {f.__name__: f for f in (kind_words, mentions_kind, constant, exact_answer, yes_count, happy_count, length_reward)}


# ---- building the base model -------------------------------------------------------------------


def build_base(directory: Path, steps: int = 600, seed: int = 0) -> None:
    """Random tiny Llama, pre-trained with a plain loop on grammar sentences, saved with its tokenizer."""
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(build_config(len(tokenizer)))
    texts = pretraining_texts(2048, seed)
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    width = max(map(len, encoded))
    ids = torch.full((len(encoded), width), tokenizer.pad_token_id)
    for i, row in enumerate(encoded):
        ids[i, : len(row)] = torch.tensor(row)
    labels = ids.masked_fill(ids == tokenizer.pad_token_id, -100)
    mask = (ids != tokenizer.pad_token_id).long()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        batch = torch.randint(0, len(encoded), (32,), generator=generator)
        loss = model(input_ids=ids[batch], attention_mask=mask[batch], labels=labels[batch]).loss
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 100 == 0 or step == steps - 1:
            print(f"base model pre-training step {step}: loss {loss.item():.3f}", flush=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
