/*
 * model_config.h — the shape of a BERT-family sentence-transformers model directory, read from
 * its JSON files only (no weights), so the config loader can know a model's dimension and token
 * limit before the model is loaded, and minilm.c can load any such model:
 *
 *   config.json                  hidden_size, num_attention_heads, num_hidden_layers,
 *                                intermediate_size, max_position_embeddings, type_vocab_size,
 *                                layer_norm_eps; hidden_act must be "gelu" (exact erf),
 *                                model_type "bert", position_embedding_type "absolute"
 *   sentence_bert_config.json    max_seq_length (else tokenizer_config.json's model_max_length,
 *                                where v5+ saves it, else max_position_embeddings; never above
 *                                the latter)
 *   modules.json + <Pooling>/config.json
 *                                pooling_mode_cls_token or pooling_mode_mean_tokens, or
 *                                pooling_mode "cls"/"mean" (v5+; others are refused); a
 *                                sentence_transformers…Normalize module → unit vectors.
 *                                No modules.json: mean pooling, normalised.
 *   tokenizer.json               normalizer (BertNormalizer): lowercase, strip_accents
 *                                (null follows lowercase), handle_chinese_chars; else
 *                                tokenizer_config.json's do_lower_case (default true)
 *
 * A directory without config.json is taken for all-MiniLM-L6-v2 (the shipped default).
 * Pure file reading; any thread.
 */
#ifndef P2Q_MODEL_CONFIG_H
#define P2Q_MODEL_CONFIG_H

#include <stddef.h>

#define P2Q_MODEL_MAX_HIDDEN 4096

typedef struct {
  int hidden, heads, layers, ffn, max_pos, type_vocab;
  float eps;
  int max_tokens;     /* tokens per text incl. [CLS]/[SEP] (sentence-transformers' max_seq_length) */
  int pool_cls;       /* 1: the [CLS] token's vector; 0: mean over the text's tokens */
  int normalize;      /* 1: L2-normalised output */
  int lowercase;      /* tokenizer: 1 lowercase + strip accents, 0 cased */
  int chinese_chars;  /* tokenizer: space CJK ideographs */
} p2q_model_cfg_t;

/* Read dir's JSON files into *c. 0, or P2Q_EMODEL (err says which file and why) / P2Q_ENOMEM. */
int p2q_model_cfg_load(const char *dir, p2q_model_cfg_t *c, char *err, size_t errlen);
/* The WordPiece vocabulary of dir/tokenizer.json (model.vocab) as vocab.txt lines ordered by id,
 * for directories without vocab.txt (sentence-transformers v5+ saves only tokenizer.json).
 * malloc()ed (*len bytes), or NULL when absent or not a dense WordPiece vocabulary. */
char *p2q_model_vocab_lines(const char *dir, size_t *len);
/* all-MiniLM-L6-v2's values. */
void p2q_model_cfg_default(p2q_model_cfg_t *c);

#endif
