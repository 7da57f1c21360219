import llmbase


def test_conversation_round_trip(client: llmbase.LLMBase) -> None:
    alice = client.user("alice")
    conv = alice.conversations.create(title="hello")
    alice.conversations.add_message(conv.id, role="user", content="hi")
    got = alice.conversations.get(conv.id)
    assert got.message_count == 1
    assert [m.content for m in alice.conversations.history(conv.id)] == ["hi"]
