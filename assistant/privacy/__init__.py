"""What the site keeps about people, and for how long: the retention policy, erasing a person,
and a person's own copy of their data. An app of its own (label ``privacy``, no models) on the
top floor, since each of these reaches conversations, knowledge and accounts alike."""
