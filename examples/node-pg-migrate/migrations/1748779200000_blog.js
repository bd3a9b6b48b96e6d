exports.up = (pgm) => {
  pgm.createTable("blog", {
    id: { type: "integer", primaryKey: true },
    title: "text",
    content: "text",
  });
};

exports.down = (pgm) => {
  pgm.dropTable("blog");
};
