-- Reverse of 0002.
DROP VIEW llmbase.conversation_feedback;
DROP TABLE llmbase.feedback_summary;
DROP TABLE llmbase.feedback;
DROP TABLE llmbase.messages;
DROP TABLE llmbase.conversations;
DROP FUNCTION llmbase.message_visible(uuid, uuid, uuid);
DROP FUNCTION llmbase.conversation_visible(uuid, uuid);
DROP FUNCTION llmbase.messages_check_conversation();
DROP FUNCTION llmbase.feedback_maintain_summary();
DROP FUNCTION llmbase.conversations_after_insert();
DROP FUNCTION llmbase.messages_before_insert();
