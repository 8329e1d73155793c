"""The deterministic scripted user of ``rlvr/Ecom-v0``.

The user holds the hidden goal (a list of :class:`~rlvr.envs.ecom.families.Step`). It tells one
request at a time, leaves out each slot with probability ``p_missing``, answers ``ask_user``
about one slot (or "no preference" for slots that are not part of its goal), says "yes" to a
confirmation only when the proposed call equals a write it has asked for (the same reply
whether or not the policy allows that write, so a confirmation never reveals a policy trap)
and otherwise restates its request without saying which argument is wrong; it gives up
after :data:`MAX_WRONG_PROPOSALS` such proposals. It never ends the dialogue otherwise. Surface
text comes from seeded templates (three paraphrases per act); typos touch filler words only,
at rate ``p_noise``, so every slot value stays exact.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from rlvr.envs.ecom.families import Scenario, Step

CLAUSES: dict[str, tuple[str, ...]] = {
    "attr": (
        "The {slot} should be {value}.",
        "I want {slot} {value}.",
        "For {slot}: {value}, please.",
    ),
    "price": (
        "It must cost at most ${value}.",
        "My budget is ${value} at most.",
        "No more than ${value}, please.",
    ),
    "rating": (
        "It needs a rating of at least {value} stars.",
        "Only {value} stars or better.",
        "Rated {value} or higher, please.",
    ),
    "shipping": (
        "It has to arrive within {value} days.",
        "Shipping must take at most {value} days.",
        "I need it in {value} days or less.",
    ),
    "brand": ("It should be made by {value}.", "I only buy {value}.", "The brand must be {value}."),
    "quantity": ("I need {value} of them.", "Make it {value} units.", "Quantity: {value}."),
    "email": ("My email is {value}.", "You can find me under {value}.", "Email: {value}."),
    "reason": (
        "The reason: {value}.",
        "Reason for cancelling: {value}.",
        "Put it down as '{value}'.",
    ),
    "refund_method": (
        "Please refund it to my {value}.",
        "Send the money back to my {value}.",
        "Refund to: {value}.",
    ),
    "payment_method": ("Pay with my {value}.", "Charge it to my {value}.", "Payment: my {value}."),
    "address": (
        "Ship it to {value}.",
        "Send it to my address at {value}.",
        "Delivery address: {value}.",
    ),
    "exchange": (
        "I'd like the one with {slot} {value} instead.",
        "Swap it for the {value} {slot} version.",
        "Exchange it for {slot} {value}.",
    ),
}
"""Clause templates per slot kind; product attributes use ``attr``."""

INTROS: dict[str, str] = {
    "find": "I'm looking for {subject}. I have {n} requirement(s). Please find the cheapest "
    "in-stock item that meets all of them and submit its item id.",
    "cart": "Please add {subject} to my cart. I have {n} requirement(s); I want the cheapest "
    "in-stock item that meets all of them.",
    "checkout": "Please check out my cart.",
    "cancel": "I want to cancel my order with the {subject}.",
    "return": "I want to return the {subject} from my order.",
    "exchange": "I want to exchange the {subject} from my order.",
    "status": "What is the status of my order with the {subject}? Submit the order id and its "
    "status as the answer.",
    "refund": "How much would I get back if I returned the {subject} from my order? Submit the "
    "amount as the answer.",
}
GREETINGS = (
    "Hi there, I need some help today.",
    "Hello! Could you help me out?",
    "Good morning, I have a question for you.",
)
YES = ("Yes, please go ahead.", "Yes, that's right, go ahead.", "Yes, do it.")
NO = (
    "No, that is not what I want.",
    "No, that's not what I asked for.",
    "No, please don't do that.",
)
GIVE_UP = "This is not what I asked for. Never mind, I'll go elsewhere."
MAX_WRONG_PROPOSALS = 2
"""Proposals the customer did not ask for before they give up (the policy says so)."""
SWITCH = "Actually, I changed my mind. "
NO_MORE = "That's all, thanks. Please submit."
ANOTHER = "Also: "
NEXT_SLOTS = ("next", "anything_else")


def clause(slot: str, value: str, variant: int) -> str:
    """The sentence that tells ``slot = value`` (paraphrase ``variant`` mod 3)."""
    if slot == "exchange":
        attr, _, wanted = value.partition("=")
        return CLAUSES["exchange"][variant % 3].format(slot=attr, value=wanted)
    templates = CLAUSES.get(slot, CLAUSES["attr"])
    return templates[variant % 3].format(slot=slot, value=value)


def _typos(rng: random.Random, text: str, rate: float) -> str:
    if rate <= 0:
        return text
    words = text.split(" ")
    for i, word in enumerate(words):
        if len(word) > 3 and word.isalpha() and rng.random() < rate:
            k = rng.randrange(1, len(word) - 2)
            words[i] = word[:k] + word[k + 1] + word[k] + word[k + 2 :]
    return " ".join(words)


def _normal(args: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    def norm(value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(sorted(str(v) for v in value))
        return value

    return tuple(sorted((k, norm(v)) for k, v in args.items()))


class ScriptedUser:
    """The simulated customer of one episode (see the module docstring)."""

    def __init__(self, scenario: Scenario, seed: int, p_noise: float, email_told: bool):
        self.scenario = scenario
        self.rng = random.Random(seed)
        self.p_noise = p_noise
        self.email_told = email_told
        self.current = 0
        self.approved: list[tuple[str, tuple[tuple[str, Any], ...]]] = []
        self.switched: set[int] = set()
        """Indices of the steps whose goal switch has happened."""
        self.wrong = 0
        """Confirmations asked for calls the customer did not ask for (goal switches aside)."""

    def opening(self) -> str:
        count = len(self.scenario.steps)
        head = [_typos(self.rng, self.rng.choice(GREETINGS), self.p_noise)]
        if count > 1:
            head.append(f"I have {count} requests today; I'll tell you the next one when you ask.")
        if self.scenario.needs_identity and self.email_told:
            head.append(self._clause("email", self.scenario.user.email))
        return " ".join([*head, self._intro(self.scenario.steps[0])])

    def _clause(self, slot: str, value: str) -> str:
        return clause(slot, value, self.rng.randrange(3))

    def _intro(self, step: Step) -> str:
        text = INTROS[step.kind].format(subject=step.subject, n=step.requirements)
        told = [self._clause(s, v) for s, v in step.slots if s in step.revealed]
        return " ".join([text, *told])

    @property
    def step(self) -> Step:
        return self.scenario.steps[self.current]

    def ask(self, slot: str) -> str:
        """The answer to ``ask_user(slot)``."""
        key = slot.strip().lower().replace(" ", "_")[:60]
        if key in NEXT_SLOTS:
            if self.current + 1 >= len(self.scenario.steps):
                return NO_MORE
            self.current += 1
            return ANOTHER + self._intro(self.step)
        if key == "email":
            return self._clause("email", self.scenario.user.email)
        if key in ("name", "zip", "name_zip"):
            user = self.scenario.user
            return f"My name is {user.name} and my zip code is {user.zip}."
        values = dict(self.step.slots)
        if self.step.switch and self.current in self.switched:
            values[self.step.switch[0]] = self.step.switch[1]
        if key in values:
            return self._clause(key, values[key])
        if key and key.replace("_", "").replace("-", "").isalnum():
            return f"I have no preference about {key}."
        return "Sorry, I don't understand the question. Ask me about one thing at a time."

    def confirm(self, tool: str, arguments: Mapping[str, Any]) -> tuple[str, bool]:
        """The reply to ``ask_confirmation(tool, arguments)`` and whether it is a 'yes'.

        "Yes" exactly to a write the customer asked for (:attr:`Step.wish` of a policy trap
        too, so the reply never tells a trap apart); otherwise a goal switch or a "no" that
        restates the request, and :attr:`wrong` counts it.
        """
        proposal = (tool, _normal(arguments))
        steps = self.scenario.steps[: self.current + 1]
        for step in steps:
            for name, args in step.writes if step.wish is None else step.wish:
                if (name, _normal(dict(args))) == proposal:
                    self.approved.append(proposal)
                    return self.rng.choice(YES), True
        switch = self.step.switch
        if switch and self.current not in self.switched and tool == "add_to_cart":
            self.switched.add(self.current)
            return SWITCH + self._clause(switch[0], switch[1]), False
        self.wrong += 1
        if self.wrong >= MAX_WRONG_PROPOSALS:
            return GIVE_UP, False
        request = INTROS[self.step.kind].format(subject=self.step.subject, n="")
        return f"{self.rng.choice(NO)} {request.split('. ')[0].split('? ')[0].rstrip('.')}.", False

    def take_approval(self, tool: str, arguments: Mapping[str, Any]) -> bool:
        """Use up the confirmation of exactly this call, if the user gave one."""
        proposal = (tool, _normal(arguments))
        if proposal in self.approved:
            self.approved.remove(proposal)
            return True
        return False

    def free_text(self, text: str) -> str:
        """The reply to ``respond(text)``: answers the first slot the text names."""
        lowered = text.lower()
        if "anything else" in lowered or "next request" in lowered:
            return self.ask("next")
        for slot, _ in self.step.slots:
            if slot.replace("_", " ") in lowered:
                return self.ask(slot)
        if "email" in lowered:
            return self.ask("email")
        return "Okay."
