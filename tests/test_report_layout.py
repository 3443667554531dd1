"""Row order shared by the report table and the figures."""

from stage1_5.decision.dummies import dummy_metrics, dummy_metrics_row as row
from stage1_5.report import ordered

REPS = ["ssl:layer_10", "ssl:layer_2", "mine:x", "acoustic:mfcc_stats", "backbone:pre_vocoder",
        "backbone:decoder_block_12", "backbone:decoder_block_02", "backbone:text_encoder_out", "ecapa:embedding"]  # fmt: skip


def test_sources_grouped_and_layers_in_natural_depth_order():
    got = ordered(dummy_metrics([row(r) for r in REPS]))["representation"].tolist()
    assert got == [
        "backbone:text_encoder_out", "backbone:decoder_block_02", "backbone:decoder_block_12", "backbone:pre_vocoder",
        "ssl:layer_2", "ssl:layer_10", "ecapa:embedding", "acoustic:mfcc_stats", "mine:x",
    ]  # fmt: skip


def test_configured_layer_order_wins():
    got = ordered(dummy_metrics([row(r) for r in REPS]), {"backbone": ["decoder_block_12", "pre_vocoder"]})
    assert got["layer"].tolist()[:4] == ["decoder_block_12", "pre_vocoder", "text_encoder_out", "decoder_block_02"]
