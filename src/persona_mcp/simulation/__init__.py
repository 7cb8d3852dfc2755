"""The chatroom: personas talking to each other about a topic."""
