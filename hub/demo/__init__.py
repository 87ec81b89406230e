"""The demo network's synthetic world: a population and the partners' simulated systems.

``ketenhub demo`` and the integration tests need partner systems to talk to that
behave like the real ones (DOMAIN.md, "The demo network") without a single real
person in them. ``population`` makes the people and what each partner knows about
them, deterministically from a seed; ``simulator`` serves that knowledge over the
``rest`` adapter's wire protocol (CONTRACT.md section 2) and can be told to fail.
"""
