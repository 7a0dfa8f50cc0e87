"""Sentences about a distortion and its severity, in several phrasings.

The describer stands in for a reasoning MLLM in the offline quickstart: RALI
learns from texts, and texts that always read the same would teach it
nothing about wording. So each sentence is assembled from interchangeable
parts (how the distortion is named, what it does to the picture, how strong it
is, what quality follows) and a template, each drawn with ``choose``; the
describer passes a chooser driven by torch's seeded RNG, so a seed fixes the
text and different seeds vary it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

#: ``choose(options)`` returns one of ``options``
Chooser = Callable[[Sequence[str]], str]

#: how each distortion may be named
NAMES: dict[str, tuple[str, ...]] = {
    "gaussian_blur": ("Gaussian blur", "defocus blur", "blur", "softness from defocus"),
    "motion_blur": ("motion blur", "camera-shake blur", "directional blur"),
    "gaussian_noise": ("Gaussian noise", "grain", "random sensor noise", "white noise"),
    "impulse_noise": ("impulse noise", "salt-and-pepper noise", "scattered black and white dots"),
    "jpeg": ("JPEG compression artefacts", "blocking from JPEG compression", "JPEG artefacts"),
    "jpeg2000": ("JPEG 2000 compression artefacts", "wavelet compression artefacts", "ringing from JPEG 2000"),
    "contrast": ("loss of contrast", "washed-out, flat contrast", "reduced contrast"),
    "brightness": ("underexposure", "darkening", "dimness"),
    "saturation": ("loss of colour saturation", "faded colours", "desaturation"),
    "pixelation": ("pixelation", "blocky pixelation", "coarse square pixels"),
    "quantisation": ("colour quantisation", "banding from too few grey levels", "posterisation"),
}

#: what each distortion does to the picture, as a clause
EFFECTS: dict[str, tuple[str, ...]] = {
    "gaussian_blur": (
        "edges are smeared and fine texture is lost",
        "details look soft and outlines are no longer crisp",
        "small structures dissolve into smooth patches",
    ),
    "motion_blur": (
        "edges are streaked in one direction",
        "objects show doubled, dragged outlines",
        "fine detail is smeared along a line",
    ),
    "gaussian_noise": (
        "a grainy speckle covers smooth areas",
        "flat regions look mottled and fine detail is masked",
        "random speckles overlay the whole picture",
    ),
    "impulse_noise": (
        "isolated black and white pixels are sprinkled everywhere",
        "bright and dark dots pepper the picture",
        "single-pixel specks break up smooth areas",
    ),
    "jpeg": (
        "8x8 blocks and ringing appear around edges",
        "smooth gradients break into blocks and colours bleed",
        "blocky patches and mosquito noise surround edges",
    ),
    "jpeg2000": (
        "edges ring and textures are smeared into blobs",
        "fine texture is wiped out and halos form around edges",
        "details turn blurry and blotchy",
    ),
    "contrast": (
        "blacks turn grey and the picture looks flat",
        "the tonal range is compressed towards a dull grey",
        "shadows and highlights lose their separation",
    ),
    "brightness": (
        "the picture is too dark and shadow detail is hard to see",
        "everything looks dim and murky",
        "dark regions merge into black",
    ),
    "saturation": (
        "colours look pale and drained",
        "hues fade towards grey",
        "the colours have lost their vividness",
    ),
    "pixelation": (
        "the picture is made of visible square blocks",
        "fine detail is replaced by coarse squares",
        "outlines turn into staircases of blocks",
    ),
    "quantisation": (
        "smooth gradients break into flat bands",
        "shading turns into a few flat steps",
        "tonal transitions show hard contour lines",
    ),
}

#: how strong a level is, level 1..5
SEVERITY: dict[int, tuple[str, ...]] = {
    1: ("slight", "faint", "mild"),
    2: ("noticeable", "moderate", "clear"),
    3: ("marked", "considerable", "obvious"),
    4: ("strong", "heavy", "pronounced"),
    5: ("severe", "extreme", "overwhelming"),
}

#: the quality that follows, level 0 (pristine) .. 5, from excellent to bad
QUALITY: dict[int, tuple[str, ...]] = {
    0: ("excellent", "very high"),
    1: ("good", "fairly high"),
    2: ("fair", "acceptable"),
    3: ("mediocre", "below average"),
    4: ("poor", "low"),
    5: ("bad", "very poor"),
}

TEMPLATES: tuple[str, ...] = (
    "The image shows {severity} {name}; {effect}, so the quality is {quality}.",
    "{Severity} {name} is visible across the picture: {effect}. Overall the quality is {quality}.",
    "Looking closely, there is {severity} {name}. {Effect}, which makes the quality {quality}.",
    "The main defect is {name}, and it is {severity}: {effect}. I would rate the quality as {quality}.",
    "Because of {severity} {name}, {effect}; the image quality is {quality}.",
)

PRISTINE: tuple[str, ...] = (
    "The image is clean and sharp, with no visible distortion; the quality is {quality}.",
    "Edges are crisp, colours and exposure look natural and there is no noise or compression artefact, "
    "so the quality is {quality}.",
    "I see no blur, noise or artefacts: fine textures are intact and the quality is {quality}.",
    "The picture looks pristine, with natural detail and tones; its quality is {quality}.",
)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def describe_distortion(distortion: str | None, level: int, choose: Chooser) -> str:
    """One sentence about ``distortion`` at ``level`` (``None``/level 0: the pristine reference)."""
    quality = choose(QUALITY[level])
    if distortion is None or level == 0:
        return choose(PRISTINE).format(quality=quality)
    template = choose(TEMPLATES)
    severity, name, effect = choose(SEVERITY[level]), choose(NAMES[distortion]), choose(EFFECTS[distortion])
    return template.format(
        severity=severity,
        Severity=_capitalise(severity),
        name=name,
        effect=effect,
        Effect=_capitalise(effect),
        quality=quality,
    )
