"""Reading a task kit: the files a researcher gets (texts, features, weak labels), no gold."""
