"""Chapter 6b exercises: distillation and speculative decoding."""

from __future__ import annotations

from course_lib.exercises import Exercise, register

register(Exercise(
    id="ch6b.spec_tokens", title="Predict: tokens per call of the target", kind="number",
    section="06_inference.md",
    prompt=("Speculative decoding with a draft that proposes 4 tokens, each accepted with "
            "probability 0.8 independently. How many tokens does one call of the target model "
            "produce on average? Within 1%."),
    hint="Leviathan et al.: (1 - a^(g+1)) / (1 - a) for acceptance a and draft length g.",
    reference=(1 - 0.8 ** 5) / (1 - 0.8), tolerance=0.01,
))

register(Exercise(
    id="ch6b.t_squared", title="Explain: why the soft term is multiplied by T²", kind="choice",
    section="06_inference.md",
    prompt="Distillation multiplies the soft-target loss (at temperature T) by T². Why?",
    choices={
        "a": "To make the loss larger so training is faster.",
        "b": "The soft term's gradients shrink as 1/T²; T² keeps its weight against the hard "
             "loss the same whatever T is.",
        "c": "Because the teacher is T times larger than the student.",
        "d": "It converts nats to bits.",
    },
    explanations={
        "a": "Without the factor, a higher T would quietly turn the soft term down.",
        "b": "Hinton et al. give this reason: the balance between the two terms stays fixed.",
        "c": "T is a temperature, not a size ratio.",
        "d": "That would be a factor ln 2.",
    },
    hint="Differentiate softmax(z / T) with respect to z: where does 1/T appear?",
    reference="b",
))
