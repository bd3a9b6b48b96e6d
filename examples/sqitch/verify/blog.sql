SELECT id, title, content FROM blog WHERE false;
